//! The wire contract's fixtures (tests/wire/, specified in docs/wire.md)
//! against this crate: every annotation fixture through its codec, every
//! projected-Secret directory state materialized in a temporary directory
//! (symlinks included) and read by the real readers. Libraries in other
//! languages run the same fixtures; a disagreement here is a bug in the
//! crate or in the fixture, never something to skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyrotor_consumer::store::{KeyStore, Meta, Snapshot};
use keyrotor_consumer::verifier::{Check, Verifier};
use keyrotor_consumer::wire::{
    self as w, LastSeen, Lenient, Nudge, RevisionReport, Traffic, WireError,
};
use keyrotor_consumer::{handshake, reporter};
use serde_json::{Map, Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/wire")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Records fixtures that passed in `<repo>/target/conformance/rust-<part>.json`,
/// beside the other languages' results (`.ci/conformance` tables them). Called
/// only after every assertion of a test held: a failure records nothing.
fn passed(part: &str, fixtures: &[String]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/conformance");
    std::fs::create_dir_all(&dir).unwrap();
    let results: Map<String, Value> = fixtures
        .iter()
        .map(|f| (f.clone(), Value::from("pass")))
        .collect();
    let doc = json!({"language": "rust", "fixtures": results});
    let text = serde_json::to_string_pretty(&doc).unwrap();
    std::fs::write(dir.join(format!("rust-{part}.json")), text).unwrap();
}

/// A field every fixture must have.
fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get(name)
        .unwrap_or_else(|| panic!("fixture without `{name}`: {v}"))
}

fn str_of<'a>(v: &'a Value, name: &str) -> &'a str {
    field(v, name)
        .as_str()
        .unwrap_or_else(|| panic!("`{name}` is not a string: {v}"))
}

/// Refuses fields a reader here would ignore (a misspelt section must fail,
/// not silently test nothing).
fn only_fields(v: &Value, allowed: &[&str]) {
    for k in v.as_object().expect("an object").keys() {
        assert!(allowed.contains(&k.as_str()), "unknown field `{k}` in {v}");
    }
}

/// Content: a string, or `{text|hex, repeat, prefix, suffix}` (tests/wire/README.md).
fn bytes_of(v: &Value) -> Vec<u8> {
    if let Some(s) = v.as_str() {
        return s.as_bytes().to_vec();
    }
    only_fields(
        v,
        &["text", "hex", "repeat", "prefix", "suffix", "path", "type"],
    );
    let unit = match (v.get("text"), v.get("hex")) {
        (Some(t), None) => t.as_str().expect("text").as_bytes().to_vec(),
        (None, Some(h)) => hex(h.as_str().expect("hex")),
        _ => panic!("content needs one of `text` and `hex`: {v}"),
    };
    let times = v
        .get("repeat")
        .map_or(1, |n| n.as_u64().expect("repeat") as usize);
    let part = |name: &str| v.get(name).map_or("", |s| s.as_str().expect(name));
    let mut out = part("prefix").as_bytes().to_vec();
    out.extend(unit.repeat(times));
    out.extend(part("suffix").as_bytes());
    out
}

fn text_of(v: &Value) -> String {
    String::from_utf8(bytes_of(v)).expect("annotation fixtures are UTF-8")
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn number(n: u64) -> Value {
    json!(n.to_string())
}

fn time(t: jiff::Timestamp) -> Value {
    json!(t.to_string())
}

fn counts(m: &BTreeMap<u64, u64>) -> Value {
    Value::Object(m.iter().map(|(v, n)| (v.to_string(), number(*n))).collect())
}

fn traffic_json(t: &Traffic) -> Value {
    json!({
        "accepted": counts(&t.accepted),
        "retired": counts(&t.retired),
        "client": t.client.map(|ip| ip.to_string()),
    })
}

fn last_seen_json(s: &LastSeen) -> Value {
    Value::Object(
        s.0.iter()
            .map(|(v, t)| (v.to_string(), time(*t)))
            .collect::<Map<_, _>>(),
    )
}

/// A strict reading: the value as JSON and its written form.
type Strict = fn(&str) -> Result<(Value, String), WireError>;
/// A lenient reading: the value as JSON and how many entries it skipped.
type LenientRead = fn(&str) -> Result<(Value, usize), WireError>;

/// One codec as the fixtures see it: text in, JSON value and canonical text out.
struct Codec {
    file: &'static str,
    name: &'static str,
    caps: Value,
    strict: Strict,
    lenient: Option<LenientRead>,
    key: fn(&Value) -> String,
}

fn strict_of<T>(
    parse: fn(&str) -> Result<T, WireError>,
    json: fn(&T) -> Value,
    format: fn(&T) -> String,
) -> impl Fn(&str) -> Result<(Value, String), WireError> {
    move |text| parse(text).map(|v| (json(&v), format(&v)))
}

/// Runs one annotation fixture file; returns how many cases it held.
fn run(codec: &Codec) -> usize {
    let doc = load(&fixtures().join("annotations").join(codec.file));
    only_fields(
        &doc,
        &["annotation", "key", "caps", "valid", "invalid", "lenient"],
    );
    assert_eq!(str_of(&doc, "annotation"), codec.name);
    assert_eq!(field(&doc, "caps"), &codec.caps, "{}: caps", codec.file);
    let mut cases = 0;
    for example in field(field(&doc, "key"), "examples").as_array().unwrap() {
        assert_eq!((codec.key)(example), str_of(example, "key"));
        cases += 1;
    }
    for case in field(&doc, "valid").as_array().unwrap() {
        only_fields(case, &["name", "text", "value", "format"]);
        let (name, text) = (str_of(case, "name"), text_of(field(case, "text")));
        let (value, canonical) =
            (codec.strict)(&text).unwrap_or_else(|e| panic!("{}: {name}: {e}", codec.file));
        assert_eq!(&value, field(case, "value"), "{}: {name}", codec.file);
        let format = text_of(field(case, "format"));
        assert_eq!(canonical, format, "{}: {name}: written form", codec.file);
        let again = (codec.strict)(&format).map(|(v, _)| v);
        assert_eq!(again.ok().as_ref(), Some(field(case, "value")), "{name}");
        cases += 1;
    }
    for case in field(&doc, "invalid").as_array().unwrap() {
        only_fields(case, &["name", "text", "error"]);
        let (name, text) = (str_of(case, "name"), text_of(field(case, "text")));
        let got = (codec.strict)(&text).map(|(v, _)| v).map_err(|e| e.class());
        assert_eq!(got, Err(str_of(case, "error")), "{}: {name}", codec.file);
        cases += 1;
    }
    for case in field(&doc, "lenient").as_array().unwrap() {
        only_fields(case, &["name", "text", "value", "skipped", "error"]);
        let read = codec
            .lenient
            .expect("a lenient case for a strict-only codec");
        let (name, text) = (str_of(case, "name"), text_of(field(case, "text")));
        let got = read(&text).map_err(|e| e.class());
        let want = match case.get("error") {
            Some(e) => Err(e.as_str().unwrap()),
            None => Ok((
                field(case, "value").clone(),
                field(case, "skipped").as_u64().unwrap() as usize,
            )),
        };
        assert_eq!(got, want, "{}: {name}", codec.file);
        cases += 1;
    }
    cases
}

fn rotation_key(example: &Value, key: fn(&str) -> String) -> String {
    key(str_of(example, "rotation"))
}

#[test]
fn every_revision_report_fixture_holds() {
    let codec = Codec {
        file: "revision-report.json",
        name: RevisionReport::NAME,
        caps: json!({"maxLength": RevisionReport::MAX_LEN}),
        strict: |t| {
            strict_of(
                RevisionReport::parse,
                |r| number(r.0),
                RevisionReport::format,
            )(t)
        },
        lenient: None,
        key: |e| w::report(str_of(e, "rotation"), str_of(e, "role")),
    };
    assert_eq!(run(&codec), 3 + 4 + 13);
    passed("revision-report", &["annotations/revision-report".into()]);
}

#[test]
fn every_nudge_fixture_holds() {
    let codec = Codec {
        file: "nudge.json",
        name: Nudge::NAME,
        caps: json!({"maxLength": Nudge::MAX_LEN}),
        strict: |t| {
            let json = |n: &Nudge| json!({"revision": number(n.revision), "attempt": number(n.attempt.into()), "at": time(n.at)});
            strict_of(Nudge::parse, json, Nudge::format)(t)
        },
        lenient: None,
        key: |e| rotation_key(e, w::nudge),
    };
    assert_eq!(run(&codec), 1 + 4 + 13);
    passed("nudge", &["annotations/nudge".into()]);
}

#[test]
fn every_last_seen_fixture_holds() {
    let codec = Codec {
        file: "last-seen.json",
        name: LastSeen::NAME,
        caps: json!({"maxLength": LastSeen::MAX_LEN, "maxEntries": LastSeen::MAX_ENTRIES}),
        strict: |t| strict_of(LastSeen::parse, last_seen_json, LastSeen::format)(t),
        lenient: Some(|t| {
            LastSeen::parse_lenient(t)
                .map(|Lenient { value, skipped }| (last_seen_json(&value), skipped))
        }),
        key: |e| rotation_key(e, w::last_seen),
    };
    assert_eq!(run(&codec), 1 + 15 + 28 + 8);
    passed("last-seen", &["annotations/last-seen".into()]);
}

#[test]
fn every_traffic_fixture_holds() {
    let codec = Codec {
        file: "traffic.json",
        name: Traffic::NAME,
        caps: json!({"maxLength": Traffic::MAX_LEN, "maxCounts": Traffic::MAX_COUNTS}),
        strict: |t| strict_of(|t| t.parse::<Traffic>(), traffic_json, Traffic::format)(t),
        lenient: Some(|t| {
            Traffic::parse_lenient(t)
                .map(|Lenient { value, skipped }| (traffic_json(&value), skipped))
        }),
        key: |e| rotation_key(e, w::traffic),
    };
    assert_eq!(run(&codec), 1 + 15 + 24 + 8);
    passed("traffic", &["annotations/traffic".into()]);
}

#[test]
fn no_annotation_fixture_file_goes_unread() {
    let mut files: Vec<String> = std::fs::read_dir(fixtures().join("annotations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "last-seen.json",
            "nudge.json",
            "revision-report.json",
            "traffic.json"
        ]
    );
}

/// A temporary directory, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "keyrotor-wire-fixture-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates `entries` under `root`, in order (parents as needed).
fn materialize(root: &Path, entries: &[Value]) {
    std::fs::create_dir_all(root).unwrap();
    for e in entries {
        let path = root.join(str_of(e, "path"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match str_of(e, "type") {
            "dir" => {
                only_fields(e, &["path", "type"]);
                std::fs::create_dir_all(&path).unwrap();
            }
            "file" => std::fs::write(&path, bytes_of(e)).unwrap(),
            "symlink" => {
                only_fields(e, &["path", "type", "target"]);
                std::os::unix::fs::symlink(str_of(e, "target"), &path).unwrap();
            }
            other => panic!("unknown entry type {other}"),
        }
    }
}

/// What the full reader (a verifier or presenter library) concludes.
fn loaded(dir: &Path, want: &Value) -> Value {
    let snap = match Snapshot::load(dir) {
        Ok(s) => s,
        Err(e) => return json!({"error": e.class()}),
    };
    let verifier = Verifier::from_store(Arc::new(KeyStore::open(dir).unwrap()));
    let checks: Vec<Value> = field(want, "checks")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let key = str_of(c, "key");
            let accepts = match verifier.check_at(key.as_bytes(), jiff::Timestamp::now()) {
                Check::Accepted(v) => Some(v.to_string()),
                Check::Retired(_) | Check::Unknown => None,
            };
            json!({"key": key, "accepts": accepts})
        })
        .collect();
    json!({
        "rotation": snap.meta.rotation,
        "roles": snap.meta.roles,
        "revision": number(snap.meta.revision),
        "accepted": snap.accepted.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        "current": snap.current.as_ref().map(|p| p.version().to_string()),
        "currentKey": snap.current.as_ref().map(|p| p.key().expose().to_string()),
        "username": snap.current.as_ref().and_then(|p| p.username()),
        "generation": snap.generation.as_ref().map(|g| g.target().to_str().unwrap().to_string()),
        "checks": checks,
    })
}

/// A fixture's `load` with the fields it may leave out filled in: a
/// `username` it does not state is `null` (tests/wire/README.md).
fn expected_load(load: &Value) -> Value {
    let mut want = load.clone();
    if let Some(fields) = want.as_object_mut().filter(|f| !f.contains_key("error")) {
        fields.entry("username").or_insert(Value::Null);
    }
    want
}

/// What the reporter sidecar concludes: the annotations it writes.
fn reported(dir: &Path) -> Value {
    match Meta::load(dir) {
        Ok((meta, _)) => json!({"annotations": reporter::annotations([&meta])}),
        Err(e) => json!({"error": e.class()}),
    }
}

#[test]
fn every_volume_fixture_reads_as_it_says() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("volumes")).unwrap() {
        let path = entry.unwrap().path();
        let doc = load(&path);
        only_fields(&doc, &["name", "description", "entries", "load", "report"]);
        let name = str_of(&doc, "name").to_string();
        assert_eq!(path.file_stem().unwrap().to_str(), Some(name.as_str()));
        let scratch = Scratch::new(&name);
        let dir = scratch.0.join("volume");
        if let Some(entries) = field(&doc, "entries").as_array() {
            materialize(&dir, entries);
        }
        let want = expected_load(field(&doc, "load"));
        assert_eq!(loaded(&dir, &want), want, "{name}: load");
        assert_eq!(&reported(&dir), field(&doc, "report"), "{name}: report");
        names.push(name);
    }
    names.sort();
    assert_eq!(names.len(), 47, "every volume fixture ran: {names:?}");
    let fixtures: Vec<String> = names.iter().map(|n| format!("volumes/{n}")).collect();
    passed("volumes", &fixtures);
}

#[test]
fn the_handshake_fixture_holds() {
    let doc = load(&fixtures().join("handshake/handshake.json"));
    only_fields(&doc, &["description", "files", "reports"]);
    let files = field(&doc, "files").as_array().unwrap();
    for f in files {
        let name = match f.get("role") {
            Some(role) => handshake::revision_file(str_of(f, "rotation"), role.as_str().unwrap()),
            None => handshake::last_seen_file(str_of(f, "rotation")),
        };
        assert_eq!(name, str_of(f, "name"));
    }
    let reports = field(&doc, "reports").as_array().unwrap();
    for (i, r) in reports.iter().enumerate() {
        let case = str_of(r, "name");
        let v = field(r, "volume");
        let meta = Meta {
            rotation: str_of(v, "rotation").into(),
            roles: field(v, "roles")
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect(),
            revision: str_of(v, "revision").parse().unwrap(),
        };
        let scratch = Scratch::new(&format!("handshake-{i}"));
        for (name, content) in field(r, "files").as_object().unwrap() {
            std::fs::write(scratch.0.join(name), content.as_str().unwrap()).unwrap();
        }
        let got = json!(handshake::reports(&scratch.0, [&meta]));
        assert_eq!(&got, field(r, "annotations"), "{case}");
    }
    assert_eq!(
        (files.len(), reports.len()),
        (4, 8),
        "every handshake case ran"
    );
    passed("handshake", &["handshake/handshake".into()]);
}
