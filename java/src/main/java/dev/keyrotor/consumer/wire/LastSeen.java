package dev.keyrotor.consumer.wire;

import java.time.Instant;
import java.util.Collections;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * When each version was last presented to a verifier (Traffic mode):
 * {@code <version>=<date-time>,...}, the value of {@code <rotation>.keyrotor.dev/last-seen} and
 * of the handshake file {@code <rotation>.last-seen}. Written with versions ascending and
 * times in UTC; the operator retires a version once its latest last-seen is a quiet window
 * in the past.
 *
 * <p>{@link #parse} is strict. {@link #parseLenient} is what the operator reads many pods
 * with: an entry that breaks the grammar is skipped and counted, spaces and tabs around a
 * version or time are allowed, a version twice keeps its latest time; a value over the caps
 * is still refused whole.
 *
 * @param seen version (unsigned) to time, in {@link Numbers#ORDER}
 */
public record LastSeen(SortedMap<Long, Instant> seen) {
    /** The value's name in errors and fixtures. */
    public static final String NAME = "last-seen";
    /** Longest value read, in bytes. */
    public static final int MAX_LENGTH = 16 * 1024;
    /** Most entries (comma-separated pieces, empty ones included); always within the length cap. */
    public static final int MAX_ENTRIES = 256;

    public LastSeen {
        TreeMap<Long, Instant> copy = new TreeMap<>(Numbers.ORDER);
        copy.putAll(seen);
        seen = Collections.unmodifiableSortedMap(copy);
    }

    /** Reads a value; anything but the grammar is an error. */
    public static LastSeen parse(String text) throws WireException {
        try {
            TreeMap<Long, Instant> seen = new TreeMap<>(Numbers.ORDER);
            for (String entry : entries(text)) {
                int eq = entry.indexOf('=');
                if (eq < 0) {
                    throw Refusal.syntax("an entry is not <version>=<time>");
                }
                long version = Numbers.decimal(entry.substring(0, eq), "version");
                Instant at = Times.parse(entry.substring(eq + 1));
                if (seen.put(version, at) != null) {
                    throw Refusal.duplicate("version");
                }
            }
            return new LastSeen(seen);
        } catch (Refusal r) {
            throw new WireException(NAME, r, text);
        }
    }

    /** Reads what it can; refuses only a value over the caps. */
    public static Lenient<LastSeen> parseLenient(String text) throws WireException {
        String[] entries;
        try {
            entries = entries(text);
        } catch (Refusal r) {
            throw new WireException(NAME, r, text);
        }
        TreeMap<Long, Instant> seen = new TreeMap<>(Numbers.ORDER);
        int skipped = 0;
        for (String entry : entries) {
            int eq = entry.indexOf('=');
            try {
                if (eq < 0) {
                    throw Refusal.syntax("no =");
                }
                long version = Numbers.decimal(Refusal.ows(entry.substring(0, eq)), "version");
                Instant at = Times.parse(Refusal.ows(entry.substring(eq + 1)));
                seen.merge(version, at, (a, b) -> a.isAfter(b) ? a : b);
            } catch (Refusal r) {
                skipped++;
            }
        }
        return new Lenient<>(new LastSeen(seen), skipped);
    }

    private static String[] entries(String text) throws Refusal {
        Refusal.checkLength(text, MAX_LENGTH);
        return Refusal.pieces(text, MAX_ENTRIES);
    }

    /** The written form: versions ascending, times in UTC. */
    public String format() {
        StringBuilder out = new StringBuilder();
        for (Map.Entry<Long, Instant> e : seen.entrySet()) {
            if (out.length() > 0) {
                out.append(',');
            }
            out.append(Numbers.format(e.getKey())).append('=').append(Times.format(e.getValue()));
        }
        return out.toString();
    }

    @Override
    public String toString() {
        return "LastSeen[" + format() + "]";
    }
}
