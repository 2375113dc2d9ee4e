/**
 * The wire contract's fixtures (tests/wire/, specified in docs/wire.md)
 * against this library: every projected-Secret state materialized in a
 * scratch directory (symlinks included) and read by the real reader, every
 * annotation value through its codec, and the handshake file names.
 *
 * The runner counts: every fixture file found gets exactly one result, a
 * file it cannot read or did not run is a failure, and the results go to
 * ../target/conformance/typescript.json for the cross-language table.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

import {
  Instant,
  LastSeen,
  Nudge,
  RevisionReport,
  Traffic,
  Verifier,
  VolumeError,
  WireError,
  loadSnapshot,
  wire,
} from '../src/index';
import { FIXTURES, PACKAGE_ROOT, bytesOf, onlyFields, scratch, textOf } from './helpers';

/** A fixture document: JSON of the shapes tests/wire/README.md describes. */
type Json = any;
type Outcome = 'pass' | 'fail' | 'n/a';

const results = new Map<string, Outcome>();
const found: string[] = [];

function fixtureFiles(sub: string): string[] {
  return fs
    .readdirSync(path.join(FIXTURES, sub))
    .sort()
    .map((f) => `${sub}/${f}`);
}

/** Runs one fixture file as one test, recording its outcome. */
function fixture(file: string, run: (doc: Json) => void): void {
  const id = file.replace(/\.json$/, '');
  found.push(id);
  test(id, () => {
    results.set(id, 'fail');
    if (!file.endsWith('.json')) throw new Error(`${file}: not a JSON fixture`);
    run(JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8')));
    results.set(id, 'pass');
  });
}

// --- volumes ----------------------------------------------------------------

function materialize(root: string, entries: Json[]): void {
  fs.mkdirSync(root, { recursive: true });
  for (const e of entries) {
    const p = path.join(root, e.path);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (e.type === 'dir') {
      onlyFields(e, ['path', 'type']);
      fs.mkdirSync(p, { recursive: true });
    } else if (e.type === 'file') {
      fs.writeFileSync(p, bytesOf(e));
    } else if (e.type === 'symlink') {
      onlyFields(e, ['path', 'type', 'target']);
      fs.symlinkSync(e.target, p);
    } else {
      throw new Error(`unknown entry type ${e.type}`);
    }
  }
}

/** What the whole-directory reader concludes, in the fixture's shape. */
function loaded(dir: string, want: Json): Json {
  let snap;
  try {
    snap = loadSnapshot(dir);
  } catch (e) {
    if (e instanceof VolumeError) return { error: e.errorClass };
    throw e;
  }
  const verifier = snap.roles.includes(wire.ROLE_VERIFIER)
    ? Verifier.open(dir, { pollIntervalMs: 0, handshakeDir: null })
    : null;
  const checks = (want.checks ?? []).map((c: Json) => {
    const check = verifier?.check(c.key);
    return { key: c.key, accepts: check?.status === 'accepted' ? check.version.toString() : null };
  });
  verifier?.close();
  return {
    rotation: snap.rotation,
    roles: [...snap.roles],
    revision: snap.revision.toString(),
    accepted: snap.accepted.map(String),
    current: snap.current?.version.toString() ?? null,
    currentKey: snap.current?.key.expose() ?? null,
    username: snap.current?.username ?? null,
    generation: snap.generation,
    checks,
  };
}

describe('volumes', () => {
  for (const file of fixtureFiles('volumes')) {
    fixture(file, (doc) => {
      onlyFields(doc, ['name', 'description', 'entries', 'load', 'report']);
      assert.equal(`volumes/${doc.name}.json`, file, 'name is the file name');
      const { dir: root, cleanup } = scratch();
      try {
        const dir = path.join(root, 'volume');
        if (doc.entries !== null) materialize(dir, doc.entries);
        // A load without `username` means null (tests/wire/README.md).
        const want = 'error' in doc.load ? doc.load : { username: null, ...doc.load };
        assert.deepEqual(loaded(dir, want), want);
        // `report` is the reporter sidecar's conclusion: not this library's.
      } finally {
        cleanup();
      }
    });
  }
});

// --- annotations ------------------------------------------------------------

interface Codec {
  name: string;
  caps: Json;
  key: (example: Json) => string;
  strict: (text: string) => [Json, string];
  lenient?: (text: string) => [Json, number];
}

const time = (t: Instant) => t.toString();
const counts = (m: Map<bigint, bigint>) => Object.fromEntries([...m].map(([v, n]) => [v.toString(), n.toString()]));
const seenJson = (s: LastSeen) => Object.fromEntries([...s].map(([v, t]) => [v.toString(), time(t)]));
const trafficJson = (t: Traffic) => ({ accepted: counts(t.accepted), retired: counts(t.retired), client: t.client });

const CODECS: Record<string, Codec> = {
  'revision-report.json': {
    name: RevisionReport.NAME,
    caps: { maxLength: RevisionReport.MAX_LENGTH },
    key: (e) => wire.reportAnnotation(e.rotation, e.role),
    strict: (t) => {
      const r = RevisionReport.parse(t);
      return [r.toString(), RevisionReport.format(r)];
    },
  },
  'nudge.json': {
    name: Nudge.NAME,
    caps: { maxLength: Nudge.MAX_LENGTH },
    key: (e) => wire.nudgeAnnotation(e.rotation),
    strict: (t) => {
      const n = Nudge.parse(t);
      return [{ revision: n.revision.toString(), attempt: String(n.attempt), at: time(n.at) }, Nudge.format(n)];
    },
  },
  'last-seen.json': {
    name: LastSeen.NAME,
    caps: { maxLength: LastSeen.MAX_LENGTH, maxEntries: LastSeen.MAX_ENTRIES },
    key: (e) => wire.lastSeenAnnotation(e.rotation),
    strict: (t) => {
      const s = LastSeen.parse(t);
      return [seenJson(s), LastSeen.format(s)];
    },
    lenient: (t) => {
      const { value, skipped } = LastSeen.parseLenient(t);
      return [seenJson(value), skipped];
    },
  },
  'traffic.json': {
    name: Traffic.NAME,
    caps: { maxLength: Traffic.MAX_LENGTH, maxCounts: Traffic.MAX_COUNTS },
    key: (e) => wire.trafficAnnotation(e.rotation),
    strict: (t) => {
      const v = Traffic.parse(t);
      return [trafficJson(v), Traffic.format(v)];
    },
    lenient: (t) => {
      const { value, skipped } = Traffic.parseLenient(t);
      return [trafficJson(value), skipped];
    },
  },
};

function errorClassOf(read: () => unknown): string | null {
  try {
    read();
    return null;
  } catch (e) {
    if (e instanceof WireError) return e.errorClass;
    throw e;
  }
}

function runCodec(codec: Codec, doc: Json): void {
  onlyFields(doc, ['annotation', 'key', 'caps', 'valid', 'invalid', 'lenient']);
  assert.equal(doc.annotation, codec.name);
  assert.deepEqual(doc.caps, codec.caps);
  for (const example of doc.key.examples) assert.equal(codec.key(example), example.key);
  for (const c of doc.valid) {
    onlyFields(c, ['name', 'text', 'value', 'format']);
    const [value, written] = codec.strict(textOf(c.text));
    assert.deepEqual(value, c.value, c.name);
    const format = textOf(c.format);
    assert.equal(written, format, `${c.name}: written form`);
    assert.deepEqual(codec.strict(format)[0], c.value, `${c.name}: written form read again`);
  }
  for (const c of doc.invalid) {
    onlyFields(c, ['name', 'text', 'error']);
    assert.equal(errorClassOf(() => codec.strict(textOf(c.text))), c.error, c.name);
  }
  for (const c of doc.lenient) {
    onlyFields(c, ['name', 'text', 'value', 'skipped', 'error']);
    if (codec.lenient === undefined) throw new Error(`${c.name}: a lenient case for a strict-only codec`);
    const read = codec.lenient;
    const text = textOf(c.text);
    if (c.error !== undefined) {
      assert.equal(errorClassOf(() => read(text)), c.error, c.name);
    } else {
      assert.deepEqual(read(text), [c.value, c.skipped], c.name);
    }
  }
}

describe('annotations', () => {
  for (const file of fixtureFiles('annotations')) {
    fixture(file, (doc) => {
      const codec = CODECS[path.basename(file)];
      if (codec === undefined) throw new Error(`${file}: no codec for this annotation`);
      runCodec(codec, doc);
    });
  }
});

// --- handshake --------------------------------------------------------------

describe('handshake', () => {
  for (const file of fixtureFiles('handshake')) {
    fixture(file, (doc) => {
      onlyFields(doc, ['description', 'files', 'reports']);
      assert.ok(doc.files.length > 0, 'the fixture names files');
      for (const f of doc.files) {
        onlyFields(f, ['rotation', 'role', 'lastSeen', 'name']);
        const name = f.lastSeen
          ? wire.handshakeLastSeenFile(f.rotation)
          : wire.handshakeRevisionFile(f.rotation, f.role);
        assert.equal(name, f.name);
      }
      // `reports` is what the reporter sidecar concludes: not this library's.
    });
  }
});

// --- the count --------------------------------------------------------------

const RESULT_FILE = path.resolve(PACKAGE_ROOT, '..', 'target', 'conformance', 'typescript.json');

after(() => {
  const fixtures = Object.fromEntries(found.map((id) => [id, results.get(id) ?? 'fail']));
  fs.mkdirSync(path.dirname(RESULT_FILE), { recursive: true });
  fs.writeFileSync(RESULT_FILE, `${JSON.stringify({ language: 'typescript', fixtures }, null, 2)}\n`);
  const passed = Object.values(fixtures).filter((o) => o === 'pass').length;
  console.log(`conformance: ${found.length} fixture files, ${passed} passed -> ${RESULT_FILE}`);
});

test('every fixture file ran and passed', () => {
  for (const sub of ['volumes', 'annotations', 'handshake']) {
    assert.ok(fixtureFiles(sub).length > 0, `${sub}: no fixture found`);
  }
  const notPassed = found.filter((id) => results.get(id) !== 'pass');
  assert.deepEqual(notPassed, [], 'fixtures that did not pass');
  assert.ok(found.length >= 39, `expected every fixture, found ${found.length}`);
});
