package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.LastSeen;
import dev.keyrotor.consumer.wire.Numbers;
import dev.keyrotor.consumer.wire.Wire;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.Arrays;
import java.util.Collections;
import java.util.Map;
import java.util.OptionalLong;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The verifier side: is a presented key one of the accepted versions, and which?
 *
 * <p>A value that cannot be a key (not 16 to 1024 printable ASCII bytes without spaces) is
 * refused before hashing. Otherwise it is hashed once (SHA-256) and compared with the digest
 * of every accepted version, and of every remembered retired version, by a constant-time
 * loop of this class (XOR-OR over all 32 bytes, selection by mask, no branch on a byte and
 * no early exit), so timing tells neither which bytes matched nor which version.
 *
 * <p>Digests of versions this process saw accepted and then retired are remembered (the
 * last {@value #RETIRED_MEMORY}) to answer {@link Check.Retired}; they are never accepted.
 * The accepted set and the retired memory are swapped together, atomically, after a whole
 * generation was read: there is no moment where nothing is accepted.
 */
public final class Verifier extends Mounted {
    /** How many retired versions a verifier remembers. */
    public static final int RETIRED_MEMORY = 8;

    private static final ThreadLocal<MessageDigest> SHA256 = ThreadLocal.withInitial(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    });

    /** What a check reads, swapped whole. */
    private record State(Snapshot snapshot, long[] versions, byte[][] digests,
            long[] retiredVersions, byte[][] retiredDigests, TreeMap<Long, byte[]> retired) {}

    private volatile State state;
    /** Version to the last time it was presented, in epoch milliseconds (Traffic mode only). */
    private final Map<Long, Long> lastSeen;

    private Verifier(Path dir, Options options) {
        super(dir, Wire.ROLE_VERIFIER, options.handshakeDir(System.getenv()));
        this.lastSeen = options.trafficMode() ? new ConcurrentHashMap<>() : null;
    }

    /** Opens a verifier (or combined) directory with the default {@link Options}. */
    public static Verifier open(Path dir) throws VolumeException {
        return open(dir, new Options());
    }

    /**
     * Opens a verifier (or combined) directory: removes this rotation's handshake files,
     * loads the directory (failing when it cannot be read), confirms the load, and follows
     * the directory from then on.
     */
    public static Verifier open(Path dir, Options options) throws VolumeException {
        Verifier verifier = new Verifier(dir, options);
        try {
            verifier.start(options, options.trafficMode());
            if (verifier.lastSeen != null && verifier.handshake() != null) {
                verifier.schedule(options.lastSeenInterval(), verifier::flushLastSeen);
            }
            return verifier;
        } catch (VolumeException | RuntimeException e) {
            verifier.close();
            throw e;
        }
    }

    /** What {@code presented} is; a null or a value that cannot be a key is {@link Check.Unknown}. */
    public Check check(String presented) {
        if (presented == null || presented.length() < SecretKey.MIN_LENGTH
                || presented.length() > SecretKey.MAX_LENGTH) {
            return Check.UNKNOWN;
        }
        byte[] bytes = new byte[presented.length()];
        for (int i = 0; i < bytes.length; i++) {
            char c = presented.charAt(i);
            if (c < 0x21 || c > 0x7e) {
                return Check.UNKNOWN;
            }
            bytes[i] = (byte) c;
        }
        Check check = checked(bytes);
        Arrays.fill(bytes, (byte) 0);
        return check;
    }

    /** What the presented bytes are; a value that cannot be a key is {@link Check.Unknown}. */
    public Check check(byte[] presented) {
        if (presented == null || !SecretKey.isKey(presented, presented.length)) {
            return Check.UNKNOWN;
        }
        return checked(presented);
    }

    /** The accepted version {@code presented} is, if any (records it in Traffic mode). */
    public OptionalLong verify(String presented) {
        return check(presented) instanceof Check.Accepted a ? OptionalLong.of(a.version()) : OptionalLong.empty();
    }

    private Check checked(byte[] presented) {
        MessageDigest sha = SHA256.get();
        byte[] digest = sha.digest(presented);
        State s = state;
        int accepted = find(s.digests, digest);
        int retired = find(s.retiredDigests, digest);
        if (accepted != NONE) {
            if (lastSeen != null) {
                lastSeen.merge(s.versions[accepted], System.currentTimeMillis(), Math::max);
            }
            return new Check.Accepted(s.versions[accepted]);
        }
        if (retired != NONE) {
            return new Check.Retired(s.retiredVersions[retired]);
        }
        return Check.UNKNOWN;
    }

    private static final int NONE = -1;

    /**
     * The index of {@code digest} among {@code digests}, or {@link #NONE}: every digest is
     * compared whole, the match is selected by mask, the loop never stops early.
     */
    static int find(byte[][] digests, byte[] digest) {
        int found = NONE;
        for (int i = 0; i < digests.length; i++) {
            byte[] known = digests[i];
            int diff = 0;
            for (int j = 0; j < known.length; j++) {
                diff |= (known[j] ^ digest[j]) & 0xff;
            }
            int equal = -((diff - 1) >>> 31); // all ones when diff == 0, else 0
            found = (found & ~equal) | (i & equal);
        }
        return found;
    }

    @Override
    void publish(Snapshot next) {
        State old = state;
        TreeMap<Long, byte[]> retired = new TreeMap<>(Numbers.ORDER);
        if (old != null) {
            retired.putAll(old.retired);
            old.snapshot.digests().forEach((v, d) -> {
                if (!next.accepted().contains(v)) {
                    retired.put(v, d);
                }
            });
        }
        // A version accepted again (a rollback) is no longer retired.
        retired.keySet().removeAll(next.accepted());
        while (retired.size() > RETIRED_MEMORY) {
            retired.pollFirstEntry();
        }
        state = new State(next, versions(next.digests()), digests(next.digests()),
                versions(retired), digests(retired), retired);
        if (lastSeen != null) {
            lastSeen.keySet().retainAll(next.accepted());
        }
    }

    private static long[] versions(Map<Long, byte[]> digests) {
        return digests.keySet().stream().mapToLong(Long::longValue).toArray();
    }

    private static byte[][] digests(Map<Long, byte[]> digests) {
        return digests.values().toArray(new byte[0][]);
    }

    @Override
    public Snapshot snapshot() {
        return state.snapshot;
    }

    /** The versions this process saw accepted and then retired (at most {@value #RETIRED_MEMORY}). */
    public SortedSet<Long> retiredVersions() {
        TreeSet<Long> out = new TreeSet<>(Numbers.ORDER);
        out.addAll(state.retired.keySet());
        return Collections.unmodifiableSortedSet(out);
    }

    /**
     * When each accepted version was last presented to this process, to the second (Traffic
     * mode; empty otherwise), at most {@link LastSeen#MAX_ENTRIES} versions (the newest).
     */
    public LastSeen lastSeen() {
        TreeMap<Long, Instant> seen = new TreeMap<>(Numbers.ORDER);
        if (lastSeen != null) {
            SortedSet<Long> accepted = snapshot().accepted();
            lastSeen.forEach((v, millis) -> {
                if (accepted.contains(v)) {
                    seen.put(v, Instant.ofEpochSecond(Math.floorDiv(millis + 500, 1000)));
                }
            });
        }
        while (seen.size() > LastSeen.MAX_ENTRIES) {
            seen.pollFirstEntry();
        }
        return new LastSeen(seen);
    }

    /** Writes {@code <rotation>.last-seen} when it changed (the empty value is never written). */
    void flushLastSeen() {
        handshake().lastSeen(this, snapshot().rotation(), lastSeen());
    }

    /** Writes last-seen one last time in Traffic mode, then stops as {@link Mounted#close()}. */
    @Override
    public void close() {
        if (lastSeen != null && handshake() != null && state != null) {
            flushLastSeen();
        }
        super.close();
    }

    @Override
    public String toString() {
        return "Verifier[" + dir() + ", " + snapshot() + ", retired=" + retiredVersions().stream()
                .map(Numbers::format).toList() + "]";
    }
}
