package dev.keyrotor.consumer;

import static dev.keyrotor.consumer.Fixtures.array;
import static dev.keyrotor.consumer.Fixtures.assertSame;
import static dev.keyrotor.consumer.Fixtures.field;
import static dev.keyrotor.consumer.Fixtures.object;
import static dev.keyrotor.consumer.Fixtures.onlyFields;
import static dev.keyrotor.consumer.Fixtures.string;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.keyrotor.consumer.wire.LastSeen;
import dev.keyrotor.consumer.wire.Lenient;
import dev.keyrotor.consumer.wire.Nudge;
import dev.keyrotor.consumer.wire.Numbers;
import dev.keyrotor.consumer.wire.RevisionReport;
import dev.keyrotor.consumer.wire.Times;
import dev.keyrotor.consumer.wire.Traffic;
import dev.keyrotor.consumer.wire.Wire;
import dev.keyrotor.consumer.wire.WireException;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The wire contract's fixtures (tests/wire, specified in docs/wire.md) against this
 * library: every annotation fixture through its codec, every directory state built in a
 * temporary directory (symlinks included) and read by the real reader and verifier, and the
 * handshake file names written by a real verifier and presenter. Every fixture file is one
 * test; a file it cannot read, or does not know, fails. The outcome per file is written to
 * {@code ../target/conformance/java.json}.
 */
class ConformanceTest {
    private static final Path RESULT = Path.of(System.getProperty("keyrotor.conformance",
            "../target/conformance/java.json"));
    private static final Map<String, String> RESULTS = new TreeMap<>();
    private static final List<String> LISTED = new ArrayList<>();

    @TestFactory
    Stream<DynamicTest> every_fixture_file_holds() throws IOException {
        assertTrue(Files.isDirectory(Fixtures.ROOT), "no fixtures at " + Fixtures.ROOT.toAbsolutePath());
        List<DynamicTest> tests = new ArrayList<>();
        List<Path> kinds;
        try (Stream<Path> s = Files.list(Fixtures.ROOT)) {
            kinds = s.filter(Files::isDirectory).sorted().toList();
        }
        for (Path kind : kinds) {
            List<Path> files;
            try (Stream<Path> s = Files.list(kind)) {
                files = s.sorted().toList();
            }
            assertTrue(!files.isEmpty(), kind + " holds no fixture");
            for (Path file : files) {
                String id = kind.getFileName() + "/" + file.getFileName().toString().replaceFirst("\\.json$", "");
                LISTED.add(id);
                tests.add(DynamicTest.dynamicTest(id, () -> record(id, () -> run(kind.getFileName().toString(), file))));
            }
        }
        assertTrue(LISTED.stream().filter(id -> id.startsWith("volumes/")).count() >= 30, "volume fixtures: " + LISTED);
        return tests.stream();
    }

    private interface Run {
        void run() throws Exception;
    }

    private static void record(String id, Run run) throws Exception {
        try {
            run.run();
            synchronized (RESULTS) {
                RESULTS.put(id, "pass");
            }
        } catch (Exception | AssertionError e) {
            synchronized (RESULTS) {
                RESULTS.put(id, "fail");
            }
            throw e;
        }
    }

    @AfterAll
    static void the_results_are_written_and_no_fixture_went_unrun() throws IOException {
        Map<String, Object> fixtures = new LinkedHashMap<>();
        synchronized (RESULTS) {
            for (String id : LISTED) {
                fixtures.put(id, RESULTS.getOrDefault(id, "fail"));
            }
        }
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("language", "java");
        doc.put("fixtures", fixtures);
        Files.createDirectories(RESULT.getParent());
        Files.writeString(RESULT, Json.write(doc) + "\n", StandardCharsets.UTF_8);
        long passed = fixtures.values().stream().filter("pass"::equals).count();
        System.out.println("conformance (java): " + passed + " of " + fixtures.size()
                + " fixture files passed; results in " + RESULT.toAbsolutePath().normalize());
        assertEquals(fixtures.size(), passed, "fixture files that did not pass: " + fixtures.entrySet().stream()
                .filter(e -> !"pass".equals(e.getValue())).map(Map.Entry::getKey).toList());
    }

    private static void run(String kind, Path file) throws Exception {
        assertTrue(file.toString().endsWith(".json"), "not a JSON fixture: " + file);
        Map<String, Object> doc = Fixtures.load(file);
        switch (kind) {
            case "volumes" -> volume(file, doc);
            case "annotations" -> annotation(file, doc);
            case "handshake" -> handshake(doc);
            default -> fail("a kind of fixture this runner does not know: " + kind);
        }
    }

    // ---- volumes ------------------------------------------------------------------------

    private static void volume(Path file, Map<String, Object> doc) throws IOException {
        onlyFields(doc, "name", "description", "entries", "load", "report");
        String name = string(doc, "name");
        assertEquals(file.getFileName().toString(), name + ".json");
        Path scratch = Files.createTempDirectory("keyrotor-fixture-");
        try {
            Path dir = scratch.resolve("volume");
            Object entries = field(doc, "entries");
            if (entries != null) {
                Fixtures.materialize(dir, array(entries));
            }
            Map<String, Object> want = new LinkedHashMap<>(object(field(doc, "load")));
            if (!want.containsKey("error")) {
                want.putIfAbsent("username", null); // absent means null (tests/wire/README.md)
            }
            assertSame(want, loaded(dir, want), name + ": load");
            object(field(doc, "report")); // the sidecar's part: present, not run here
        } finally {
            deleteTree(scratch);
        }
    }

    /** What a reader of the whole directory concludes, in the fixture's shape. */
    private static Map<String, Object> loaded(Path dir, Map<String, Object> want) {
        Snapshot s;
        try {
            s = Snapshot.load(dir);
        } catch (VolumeException e) {
            return Map.of("error", e.errorClass());
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("rotation", s.rotation());
        out.put("roles", s.roles());
        out.put("revision", Numbers.format(s.revision()));
        out.put("accepted", s.accepted().stream().map(Numbers::format).toList());
        out.put("current", s.currentVersion().isPresent() ? Numbers.format(s.currentVersion().getAsLong()) : null);
        out.put("currentKey", s.currentKey().map(SecretKey::reveal).orElse(null));
        out.put("username", s.username().orElse(null));
        out.put("generation", s.generation().orElse(null));
        List<Object> checks = new ArrayList<>();
        List<Object> wanted = want.containsKey("checks") ? array(want.get("checks")) : List.of();
        if (!wanted.isEmpty()) {
            try (Verifier v = Verifier.open(dir, new Options().noHandshake().pollInterval(Duration.ZERO))) {
                for (Object c : wanted) {
                    Map<String, Object> check = object(c);
                    onlyFields(check, "key", "accepts");
                    Object key = field(check, "key");
                    Check got = v.check(Fixtures.bytes(key));
                    Map<String, Object> result = new LinkedHashMap<>();
                    result.put("key", key);
                    result.put("accepts", got instanceof Check.Accepted a ? Numbers.format(a.version()) : null);
                    checks.add(result);
                }
            } catch (VolumeException e) {
                return Map.of("error", "verifier: " + e.errorClass());
            }
        }
        out.put("checks", checks);
        return out;
    }

    // ---- annotations --------------------------------------------------------------------

    @FunctionalInterface
    private interface Read {
        /** The value as fixture JSON, and its written form (strict) or skipped count (lenient). */
        Object[] read(String text) throws WireException;
    }

    private record Codec(String name, Map<String, Object> caps, Read strict, Read lenient,
            Function<Map<String, Object>, String> key) {}

    private static Map<String, Object> caps(Object... pairs) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            out.put((String) pairs[i], BigDecimal.valueOf((Integer) pairs[i + 1]));
        }
        return out;
    }

    private static Codec codec(String file) {
        return switch (file) {
            case "revision-report.json" -> new Codec(RevisionReport.NAME, caps("maxLength", RevisionReport.MAX_LENGTH),
                    t -> {
                        RevisionReport r = RevisionReport.parse(t);
                        return new Object[] {Numbers.format(r.revision()), r.format()};
                    }, null, e -> Wire.revisionAnnotation(string(e, "rotation"), string(e, "role")));
            case "nudge.json" -> new Codec(Nudge.NAME, caps("maxLength", Nudge.MAX_LENGTH),
                    t -> {
                        Nudge n = Nudge.parse(t);
                        Map<String, Object> v = new LinkedHashMap<>();
                        v.put("revision", Numbers.format(n.revision()));
                        v.put("attempt", Numbers.format(n.attempt()));
                        v.put("at", Times.format(n.at()));
                        return new Object[] {v, n.format()};
                    }, null, e -> Wire.nudgeAnnotation(string(e, "rotation")));
            case "last-seen.json" -> new Codec(LastSeen.NAME,
                    caps("maxLength", LastSeen.MAX_LENGTH, "maxEntries", LastSeen.MAX_ENTRIES),
                    t -> {
                        LastSeen s = LastSeen.parse(t);
                        return new Object[] {lastSeenJson(s), s.format()};
                    },
                    t -> {
                        Lenient<LastSeen> l = LastSeen.parseLenient(t);
                        return new Object[] {lastSeenJson(l.value()), l.skipped()};
                    }, e -> Wire.lastSeenAnnotation(string(e, "rotation")));
            case "traffic.json" -> new Codec(Traffic.NAME,
                    caps("maxLength", Traffic.MAX_LENGTH, "maxCounts", Traffic.MAX_COUNTS),
                    t -> {
                        Traffic x = Traffic.parse(t);
                        return new Object[] {trafficJson(x), x.format()};
                    },
                    t -> {
                        Lenient<Traffic> l = Traffic.parseLenient(t);
                        return new Object[] {trafficJson(l.value()), l.skipped()};
                    }, e -> Wire.trafficAnnotation(string(e, "rotation")));
            default -> throw new AssertionError("an annotation this library has no codec for: " + file);
        };
    }

    private static Map<String, Object> lastSeenJson(LastSeen s) {
        Map<String, Object> out = new LinkedHashMap<>();
        s.seen().forEach((v, t) -> out.put(Numbers.format(v), Times.format(t)));
        return out;
    }

    private static Map<String, Object> counts(SortedMap<Long, Long> counts) {
        Map<String, Object> out = new LinkedHashMap<>();
        counts.forEach((v, n) -> out.put(Numbers.format(v), Numbers.format(n)));
        return out;
    }

    private static Map<String, Object> trafficJson(Traffic t) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("accepted", counts(t.accepted()));
        out.put("retired", counts(t.retired()));
        out.put("client", t.client());
        return out;
    }

    private static void annotation(Path file, Map<String, Object> doc) throws WireException {
        onlyFields(doc, "annotation", "key", "caps", "valid", "invalid", "lenient");
        Codec codec = codec(file.getFileName().toString());
        assertEquals(codec.name(), string(doc, "annotation"));
        assertSame(field(doc, "caps"), codec.caps(), "caps");
        int cases = 0;
        for (Object e : array(field(object(field(doc, "key")), "examples"))) {
            assertEquals(string(object(e), "key"), codec.key().apply(object(e)));
            cases++;
        }
        for (Object c : array(field(doc, "valid"))) {
            Map<String, Object> v = object(c);
            onlyFields(v, "name", "text", "value", "format");
            String name = string(v, "name");
            Object[] got = codec.strict().read(Fixtures.text(field(v, "text")));
            assertSame(field(v, "value"), got[0], name + ": value");
            String format = Fixtures.text(field(v, "format"));
            assertEquals(format, got[1], name + ": written form");
            assertSame(field(v, "value"), codec.strict().read(format)[0], name + ": written form read again");
            cases++;
        }
        for (Object c : array(field(doc, "invalid"))) {
            Map<String, Object> v = object(c);
            onlyFields(v, "name", "text", "error");
            assertEquals(string(v, "error"), refusal(codec.strict(), Fixtures.text(field(v, "text"))),
                    string(v, "name"));
            cases++;
        }
        for (Object c : array(field(doc, "lenient"))) {
            Map<String, Object> v = object(c);
            onlyFields(v, "name", "text", "value", "skipped", "error");
            String name = string(v, "name");
            assertTrue(codec.lenient() != null, name + ": a lenient case for a strict-only codec");
            String text = Fixtures.text(field(v, "text"));
            if (v.containsKey("error")) {
                assertEquals(string(v, "error"), refusal(codec.lenient(), text), name);
            } else {
                Object[] got = codec.lenient().read(text);
                assertSame(field(v, "value"), got[0], name + ": value");
                assertEquals(((BigDecimal) field(v, "skipped")).intValueExact(), got[1], name + ": skipped");
            }
            cases++;
        }
        assertTrue(cases > 0, "no case in " + file);
    }

    private static String refusal(Read read, String text) {
        try {
            Object[] got = read.read(text);
            return "read as " + Json.write(got[0]);
        } catch (WireException e) {
            assertTrue(e.getMessage().length() < 400, "an error quotes a bounded prefix only");
            return e.errorClass();
        }
    }

    // ---- handshake ----------------------------------------------------------------------

    /**
     * Each file name the fixture gives is the one a real verifier or presenter writes: the
     * library is run on a directory of that rotation and role with a handshake directory.
     */
    private static void handshake(Map<String, Object> doc) throws IOException {
        onlyFields(doc, "description", "files", "reports");
        array(field(doc, "reports")); // the sidecar's part
        List<Object> files = array(field(doc, "files"));
        assertTrue(!files.isEmpty());
        for (Object f : files) {
            Map<String, Object> entry = object(f);
            onlyFields(entry, "rotation", "role", "lastSeen", "name");
            String rotation = string(entry, "rotation");
            String name = string(entry, "name");
            boolean lastSeen = Boolean.TRUE.equals(entry.get("lastSeen"));
            String expected = lastSeen ? Wire.handshakeLastSeenFile(rotation)
                    : Wire.handshakeRevisionFile(rotation, string(entry, "role"));
            assertEquals(name, expected, "file name");
            String role = lastSeen ? Wire.ROLE_VERIFIER : string(entry, "role");
            assertEquals(Map.of(name, lastSeen ? "3=" : "8"), written(rotation, role, lastSeen, name),
                    "what a " + role + " writes");
        }
    }

    /** Runs a verifier or presenter of {@code rotation} and returns the handshake file it wrote. */
    private static Map<String, String> written(String rotation, String role, boolean lastSeen, String name)
            throws IOException {
        Path scratch = Files.createTempDirectory("keyrotor-handshake-");
        try {
            Path dir = scratch.resolve("volume");
            Path handshake = scratch.resolve("handshake");
            Files.createDirectories(dir);
            Files.createDirectories(handshake);
            String key = "fake-test-key-v3-not-a-secret";
            Files.writeString(dir.resolve("rotation"), rotation);
            Files.writeString(dir.resolve("role"), role);
            Files.writeString(dir.resolve("revision"), "8");
            Files.writeString(dir.resolve("accepted"), "3");
            Files.writeString(dir.resolve("v3.sha256"), HexFormat.of().formatHex(Snapshot.sha256(
                    key.getBytes(StandardCharsets.US_ASCII), key.length())));
            Files.writeString(dir.resolve("version"), "3");
            Files.writeString(dir.resolve("key"), key);
            Options options = new Options().handshakeDir(handshake).pollInterval(Duration.ZERO).trafficMode(lastSeen);
            if (role.equals(Wire.ROLE_PRESENTER)) {
                Presenter.open(dir, options).close();
            } else {
                try (Verifier v = Verifier.open(dir, options)) {
                    assertTrue(v.check(key).isAccepted());
                }
            }
            Path file = handshake.resolve(name);
            assertTrue(Files.exists(file), name + " was not written");
            String content = Files.readString(file);
            return Map.of(name, lastSeen ? content.substring(0, 2) : content);
        } finally {
            deleteTree(scratch);
        }
    }

    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.sorted((a, b) -> b.getNameCount() - a.getNameCount()).collect(Collectors.toList())) {
                Files.deleteIfExists(p);
            }
        }
    }

    static TreeSet<String> names(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).collect(Collectors.toCollection(TreeSet::new));
        }
    }
}
