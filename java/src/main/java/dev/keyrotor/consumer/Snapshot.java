package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.Numbers;
import dev.keyrotor.consumer.wire.Wire;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * One generation of a mounted projected Secret, read whole and checked against every
 * grammar and cap of docs/wire.md. Verifier digests are decoded (and plain {@code v<N>.key}
 * files hashed) at load, so verification compares 32-byte digests only. Its
 * {@code toString} shows versions, revisions and the user name (not secret), never a key
 * or a digest.
 */
public final class Snapshot {
    private final Meta meta;
    private final SortedSet<Long> accepted;
    private final Map<Long, byte[]> digests;
    private final Long currentVersion;
    private final SecretKey currentKey;
    private final String username;
    private final String generation;

    /** What every projected Secret says about itself. */
    record Meta(String rotation, List<String> roles, long revision) {
        boolean hasRole(String role) {
            return roles.contains(role);
        }

        static Meta read(Volume.FileSet files) throws VolumeException {
            String rotation = files.required(Wire.ROTATION_FILE);
            List<String> roles = list(files.required(Wire.ROLE_FILE));
            if (rotation.isEmpty()) {
                throw files.malformed(Wire.ROTATION_FILE, "is empty");
            }
            if (roles.isEmpty()) {
                throw files.malformed(Wire.ROLE_FILE, "names no role");
            }
            // docs/wire.md other-role: printable ASCII, no space, no comma.
            for (String role : roles) {
                if (!role.chars().allMatch(c -> c >= 0x21 && c <= 0x7e && c != ',')) {
                    throw files.malformed(Wire.ROLE_FILE, "a role is not a word of printable ASCII");
                }
            }
            return new Meta(rotation, List.copyOf(roles), number(files, Wire.REVISION_FILE));
        }

        /** Reads only the metadata files, consistently (what the handshake needs at start). */
        static Meta load(Path dir) throws VolumeException {
            return Volume.readConsistent(dir, Meta::read).value();
        }
    }

    private Snapshot(Meta meta, SortedSet<Long> accepted, Map<Long, byte[]> digests,
            Long currentVersion, SecretKey currentKey, String username, String generation) {
        this.meta = meta;
        this.accepted = accepted;
        this.digests = digests;
        this.currentVersion = currentVersion;
        this.currentKey = currentKey;
        this.username = username;
        this.generation = generation;
    }

    /**
     * Loads the whole directory consistently (never half old, half new): the metadata, and
     * what its roles require. Fails with the class of the first error met.
     */
    public static Snapshot load(Path dir) throws VolumeException {
        Volume.Read<Snapshot> read = Volume.readConsistent(dir, Snapshot::read);
        Snapshot s = read.value();
        return new Snapshot(s.meta, s.accepted, s.digests, s.currentVersion, s.currentKey,
                s.username, read.generation().orElse(null));
    }

    private static Snapshot read(Volume.FileSet files) throws VolumeException {
        Meta meta = Meta.read(files);
        SortedSet<Long> accepted = new TreeSet<>(Numbers.ORDER);
        Map<Long, byte[]> digests = new TreeMap<>(Numbers.ORDER);
        if (meta.hasRole(Wire.ROLE_VERIFIER)) {
            accepted.addAll(versions(files));
            for (long v : accepted) {
                digests.put(v, digest(files, v));
            }
        }
        Long version = null;
        SecretKey key = null;
        String username = null;
        if (meta.hasRole(Wire.ROLE_PRESENTER)) {
            version = number(files, Wire.VERSION_FILE);
            key = keyFile(files, Wire.KEY_FILE);
            if (key == null) {
                throw files.missing(Wire.KEY_FILE);
            }
            username = username(files);
        }
        return new Snapshot(meta, Collections.unmodifiableSortedSet(accepted),
                Collections.unmodifiableMap(digests), version, key, username, null);
    }

    /** The optional {@code username} file: null when absent; present, it must be a user name. */
    private static String username(Volume.FileSet files) throws VolumeException {
        String name = files.text(Wire.USERNAME_FILE);
        if (name != null && (name.isEmpty() || name.length() > Wire.MAX_USERNAME_LENGTH
                || !name.chars().allMatch(c -> c >= 0x21 && c <= 0x7e))) {
            throw files.malformed(Wire.USERNAME_FILE,
                    "is not 1 to 63 bytes of printable ASCII without spaces");
        }
        return name;
    }

    /** The comma-separated items of a list file, without whitespace and empty items. */
    private static List<String> list(String text) {
        List<String> items = new ArrayList<>();
        for (String item : text.split(",", -1)) {
            String trimmed = Volume.trimAscii(item);
            if (!trimmed.isEmpty()) {
                items.add(trimmed);
            }
        }
        return items;
    }

    private static long number(Volume.FileSet files, String name) throws VolumeException {
        OptionalLong n = Numbers.parse(files.required(name));
        if (n.isEmpty()) {
            throw files.malformed(name, "is not a number");
        }
        return n.getAsLong();
    }

    private static List<Long> versions(Volume.FileSet files) throws VolumeException {
        List<Long> versions = new ArrayList<>();
        for (String item : list(files.required(Wire.ACCEPTED_FILE))) {
            OptionalLong v = Numbers.parse(item);
            if (v.isEmpty()) {
                throw files.malformed(Wire.ACCEPTED_FILE, "is not a comma-separated list of versions");
            }
            versions.add(v.getAsLong());
        }
        return versions;
    }

    /** Version {@code v}'s digest: {@code v<N>.sha256} when present, else the SHA-256 of {@code v<N>.key}. */
    private static byte[] digest(Volume.FileSet files, long v) throws VolumeException {
        String name = Wire.digestFile(v);
        String hex = files.text(name);
        if (hex != null) {
            byte[] digest = decodeHex(hex);
            if (digest == null) {
                throw files.malformed(name, "is not 64 hex digits");
            }
            return digest;
        }
        name = Wire.plainKeyFile(v);
        SecretKey key = keyFile(files, name);
        if (key == null) {
            throw files.missing(name);
        }
        return sha256(key.bytes(), key.length());
    }

    /** A key file, one trailing LF tolerated; null when it does not exist. */
    private static SecretKey keyFile(Volume.FileSet files, String name) throws VolumeException {
        byte[] bytes = files.read(name, Volume.MAX_KEY_FILE);
        if (bytes == null) {
            return null;
        }
        int length = bytes.length;
        if (length > 0 && bytes[length - 1] == '\n') {
            length--;
        }
        SecretKey key = SecretKey.adopt(bytes, length);
        Arrays.fill(bytes, (byte) 0);
        if (key == null) {
            throw files.malformed(name,
                    "is not a key (16 to 1024 printable ASCII characters without spaces)");
        }
        return key;
    }

    private static byte[] decodeHex(String hex) {
        if (hex.length() != 64) {
            return null;
        }
        byte[] out = new byte[32];
        for (int i = 0; i < 32; i++) {
            int hi = hexDigit(hex.charAt(2 * i));
            int lo = hexDigit(hex.charAt(2 * i + 1));
            if (hi < 0 || lo < 0) {
                return null;
            }
            out[i] = (byte) (hi << 4 | lo);
        }
        return out;
    }

    /** An ASCII hex digit's value, either case, or -1 (no other script's digits). */
    private static int hexDigit(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    }

    static byte[] sha256(byte[] bytes, int length) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(bytes, 0, length);
            return md.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }

    /** The rotation's name. */
    public String rotation() {
        return meta.rotation();
    }

    /** The roles, in file order ({@code verifier}, {@code presenter}, or both). */
    public List<String> roles() {
        return meta.roles();
    }

    /** Whether this Secret serves {@code role}. */
    public boolean hasRole(String role) {
        return meta.hasRole(role);
    }

    /** The projected Secret's revision (unsigned). */
    public long revision() {
        return meta.revision();
    }

    /** The accepted versions in ascending (unsigned) order; empty unless it serves {@code verifier}. */
    public SortedSet<Long> accepted() {
        return accepted;
    }

    /** The presenter's current version; empty unless it serves {@code presenter}. */
    public OptionalLong currentVersion() {
        return currentVersion == null ? OptionalLong.empty() : OptionalLong.of(currentVersion);
    }

    /** The presenter's current key; empty unless it serves {@code presenter}. */
    public Optional<SecretKey> currentKey() {
        return Optional.ofNullable(currentKey);
    }

    /**
     * The user name of the presenter's current version, read with its key; empty when the
     * version has none (no {@code username} file) or unless it serves {@code presenter}.
     */
    public Optional<String> username() {
        return Optional.ofNullable(username);
    }

    /** Where {@code ..data} pointed when the directory was read; empty for a plain directory. */
    public Optional<String> generation() {
        return Optional.ofNullable(generation);
    }

    Meta meta() {
        return meta;
    }

    Map<Long, byte[]> digests() {
        return digests;
    }

    /** Same files (a plain directory has no generation to compare). */
    boolean sameContent(Snapshot other) {
        if (!meta.equals(other.meta) || !accepted.equals(other.accepted)
                || !Objects.equals(currentVersion, other.currentVersion)
                || !Objects.equals(username, other.username)) {
            return false;
        }
        for (Map.Entry<Long, byte[]> e : digests.entrySet()) {
            if (!Arrays.equals(e.getValue(), other.digests.get(e.getKey()))) {
                return false;
            }
        }
        if (currentKey == null || other.currentKey == null) {
            return currentKey == other.currentKey;
        }
        return MessageDigest.isEqual(currentKey.bytes(), other.currentKey.bytes());
    }

    @Override
    public String toString() {
        return "Snapshot[rotation=" + meta.rotation() + ", roles=" + meta.roles()
                + ", revision=" + Numbers.format(meta.revision())
                + ", accepted=" + accepted.stream().map(Numbers::format).collect(Collectors.joining(",", "[", "]"))
                + ", current=" + (currentVersion == null ? "none" : Numbers.format(currentVersion))
                + ", username=" + (username == null ? "none" : username)
                + ", generation=" + (generation == null ? "none" : generation) + "]";
    }
}
