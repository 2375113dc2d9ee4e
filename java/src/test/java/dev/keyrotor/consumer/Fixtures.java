package dev.keyrotor.consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Reading the language-neutral fixtures of tests/wire (their conventions: tests/wire/README.md). */
final class Fixtures {
    /** Where the fixtures are: {@code ../tests/wire} from this project, as Maven passes it. */
    static final Path ROOT = Path.of(System.getProperty("keyrotor.fixtures", "../tests/wire"));

    private Fixtures() {}

    @SuppressWarnings("unchecked")
    static Map<String, Object> load(Path file) throws IOException {
        Object doc = Json.parse(Files.readString(file, StandardCharsets.UTF_8));
        assertTrue(doc instanceof Map, file + ": not a JSON object");
        return (Map<String, Object>) doc;
    }

    /** A field every fixture must have. */
    static Object field(Map<String, Object> v, String name) {
        assertTrue(v.containsKey(name), "fixture without `" + name + "`: " + v.keySet());
        return v.get(name);
    }

    static String string(Map<String, Object> v, String name) {
        Object s = field(v, name);
        assertTrue(s instanceof String, "`" + name + "` is not a string");
        return (String) s;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> object(Object v) {
        assertTrue(v instanceof Map, "not an object: " + v);
        return (Map<String, Object>) v;
    }

    @SuppressWarnings("unchecked")
    static List<Object> array(Object v) {
        assertTrue(v instanceof List, "not an array: " + v);
        return (List<Object>) v;
    }

    /** Refuses fields a reader here would ignore: a misspelt section fails, it does not test nothing. */
    static void onlyFields(Map<String, Object> v, String... allowed) {
        Set<String> known = Set.of(allowed);
        for (String k : v.keySet()) {
            assertTrue(known.contains(k), "unknown field `" + k + "`");
        }
    }

    /** Content: a string, or {@code {text|hex, repeat, prefix, suffix}}. */
    static byte[] bytes(Object v) {
        if (v instanceof String s) {
            return s.getBytes(StandardCharsets.UTF_8);
        }
        Map<String, Object> o = object(v);
        onlyFields(o, "text", "hex", "repeat", "prefix", "suffix", "path", "type");
        byte[] unit;
        if (o.containsKey("text") == o.containsKey("hex")) {
            throw new AssertionError("content needs one of `text` and `hex`");
        }
        unit = o.containsKey("text") ? string(o, "text").getBytes(StandardCharsets.UTF_8)
                : HexFormat.of().parseHex(string(o, "hex"));
        int repeat = o.containsKey("repeat") ? ((BigDecimal) o.get("repeat")).intValueExact() : 1;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(part(o, "prefix"));
        for (int i = 0; i < repeat; i++) {
            out.writeBytes(unit);
        }
        out.writeBytes(part(o, "suffix"));
        return out.toByteArray();
    }

    private static byte[] part(Map<String, Object> o, String name) {
        return o.containsKey(name) ? string(o, name).getBytes(StandardCharsets.UTF_8) : new byte[0];
    }

    static String text(Object v) {
        return new String(bytes(v), StandardCharsets.UTF_8);
    }

    /** Creates {@code entries} under {@code root}, in order, parents as needed. */
    static void materialize(Path root, List<Object> entries) throws IOException {
        Files.createDirectories(root);
        for (Object e : entries) {
            Map<String, Object> entry = object(e);
            Path path = root.resolve(string(entry, "path"));
            Files.createDirectories(path.getParent());
            switch (string(entry, "type")) {
                case "dir" -> {
                    onlyFields(entry, "path", "type");
                    Files.createDirectories(path);
                }
                case "file" -> Files.write(path, bytes(entry));
                case "symlink" -> {
                    onlyFields(entry, "path", "type", "target");
                    Files.createSymbolicLink(path, Path.of(string(entry, "target")));
                }
                default -> throw new AssertionError("unknown entry type " + entry.get("type"));
            }
        }
    }

    /** Compares JSON values (objects by content, whatever their order). */
    static void assertSame(Object want, Object got, String what) {
        if (!java.util.Objects.equals(want, got)) {
            String w = Json.write(want);
            String g = Json.write(got);
            assertEquals(w.length() > 2000 ? w.substring(0, 2000) + "…" : w,
                    g.length() > 2000 ? g.substring(0, 2000) + "…" : g, what);
            throw new AssertionError(what + ": values differ");
        }
    }
}
