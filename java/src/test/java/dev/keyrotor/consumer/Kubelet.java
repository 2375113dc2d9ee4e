package dev.keyrotor.consumer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Publishes directory contents the way kubelet's AtomicWriter does: a new timestamped
 * directory, a {@code ..data_tmp} link renamed over {@code ..data}, visible links, and the
 * old directory deleted. Tests drive swaps with it; the reader must never notice a swap
 * other than by seeing the new content whole.
 */
final class Kubelet {
    private final Path dir;
    private int published;
    private String current;
    private Set<String> visible = new TreeSet<>();

    Kubelet(Path dir) throws IOException {
        this.dir = dir;
        Files.createDirectories(dir);
    }

    Path dir() {
        return dir;
    }

    /** Publishes {@code files} (name to content) as a new generation; returns its name. */
    String publish(Map<String, String> files) throws IOException {
        Map<String, byte[]> bytes = new LinkedHashMap<>();
        files.forEach((k, v) -> bytes.put(k, v.getBytes(StandardCharsets.UTF_8)));
        return publishBytes(bytes);
    }

    String publishBytes(Map<String, byte[]> files) throws IOException {
        String generation = String.format("..2026_03_01_10_00_%02d.%09d", published % 60, ++published);
        Path next = dir.resolve(generation);
        Files.createDirectory(next);
        for (Map.Entry<String, byte[]> f : files.entrySet()) {
            Files.write(next.resolve(f.getKey()), f.getValue());
        }
        Path tmp = dir.resolve("..data_tmp");
        Files.deleteIfExists(tmp);
        Files.createSymbolicLink(tmp, Path.of(generation));
        Files.move(tmp, dir.resolve("..data"), StandardCopyOption.ATOMIC_MOVE);
        for (String name : files.keySet()) {
            if (!visible.contains(name)) {
                Files.createSymbolicLink(dir.resolve(name), Path.of("..data", name));
            }
        }
        for (String name : visible) {
            if (!files.containsKey(name)) {
                Files.deleteIfExists(dir.resolve(name));
            }
        }
        visible = new TreeSet<>(files.keySet());
        if (current != null) {
            ConformanceTest.deleteTree(dir.resolve(current));
        }
        current = generation;
        return generation;
    }

    /** Removes the whole volume, as when it is unmounted. */
    void vanish() throws IOException {
        if (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
            ConformanceTest.deleteTree(dir);
        }
    }

    /** A fake key of version {@code v}: obviously test data, never issued. */
    static String key(long v) {
        return "fake-test-key-v" + v + "-not-a-secret";
    }

    static String sha256Hex(String key) {
        byte[] bytes = key.getBytes(StandardCharsets.US_ASCII);
        return HexFormat.of().formatHex(Snapshot.sha256(bytes, bytes.length));
    }

    /** A verifier Secret's files accepting {@code versions} (keys {@link #key}). */
    static Map<String, String> verifier(String rotation, long revision, long... versions) {
        Map<String, String> files = new LinkedHashMap<>();
        files.put("rotation", rotation);
        files.put("role", "verifier");
        files.put("revision", Long.toString(revision));
        StringBuilder accepted = new StringBuilder();
        for (long v : versions) {
            accepted.append(accepted.length() == 0 ? "" : ",").append(v);
            files.put("v" + v + ".sha256", sha256Hex(key(v)));
        }
        files.put("accepted", accepted.toString());
        return files;
    }

    /** A presenter Secret's files presenting {@code version}. */
    static Map<String, String> presenter(String rotation, long revision, long version) {
        Map<String, String> files = new LinkedHashMap<>();
        files.put("rotation", rotation);
        files.put("role", "presenter");
        files.put("revision", Long.toString(revision));
        files.put("version", Long.toString(version));
        files.put("key", key(version));
        return files;
    }
}
