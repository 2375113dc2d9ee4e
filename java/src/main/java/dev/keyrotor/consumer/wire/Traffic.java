package dev.keyrotor.consumer.wire;

import java.util.Collections;
import java.util.Map;
import java.util.Optional;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * What a verifier endpoint checked since its process started, per version:
 * {@code accepted=3:1520,4:88;retired=2:5;client=10.0.0.5}, the value of
 * {@code <rotation>.keyrotor.dev/traffic}. Counts only grow; {@code client} is the address
 * that last presented a retired version.
 *
 * <p>Strict reading: each known part at most once, each version at most once per list,
 * unknown parts ({@code name=printable ASCII}) checked and ignored. Lenient reading (the
 * operator's): malformed counts, clients and parts without {@code =} are skipped and counted,
 * spaces and tabs around names and numbers allowed, the last repetition wins. Both refuse a
 * value over the caps.
 *
 * @param accepted version to count, both unsigned
 * @param retired version to count, both unsigned
 * @param client the canonical address (RFC 5952 for IPv6), or null
 */
public record Traffic(SortedMap<Long, Long> accepted, SortedMap<Long, Long> retired, String client) {
    /** The value's name in errors and fixtures. */
    public static final String NAME = "traffic";
    /** Longest value read, in bytes. */
    public static final int MAX_LENGTH = 64 * 1024;
    /** Most counts in one list; always within the length cap. */
    public static final int MAX_COUNTS = 512;

    /** @throws IllegalArgumentException when {@code client} is not an IP address */
    public Traffic {
        accepted = copy(accepted);
        retired = copy(retired);
        if (client != null) {
            try {
                client = IpAddresses.canonical(client);
            } catch (Refusal r) {
                throw new IllegalArgumentException("client is not an IP address");
            }
        }
    }

    private static SortedMap<Long, Long> copy(Map<Long, Long> counts) {
        TreeMap<Long, Long> out = new TreeMap<>(Numbers.ORDER);
        out.putAll(counts);
        return Collections.unmodifiableSortedMap(out);
    }

    /** The client, when there is one. */
    public Optional<String> clientAddress() {
        return Optional.ofNullable(client);
    }

    /** Reads a value; anything but the grammar is an error. */
    public static Traffic parse(String text) throws WireException {
        try {
            Refusal.checkLength(text, MAX_LENGTH);
            SortedMap<Long, Long> accepted = null;
            SortedMap<Long, Long> retired = null;
            String client = null;
            for (String part : text.split(";", -1)) {
                int eq = part.indexOf('=');
                if (eq < 0) {
                    throw Refusal.syntax("a part is not <name>=<value>");
                }
                String name = part.substring(0, eq);
                String value = part.substring(eq + 1);
                switch (name) {
                    case "accepted" -> accepted = once(accepted, strictCounts(value));
                    case "retired" -> retired = once(retired, strictCounts(value));
                    case "client" -> {
                        String address = IpAddresses.canonical(value);
                        if (client != null) {
                            throw Refusal.duplicate("client");
                        }
                        client = address;
                    }
                    default -> extension(name, value);
                }
            }
            return new Traffic(accepted == null ? new TreeMap<>() : accepted,
                    retired == null ? new TreeMap<>() : retired, client);
        } catch (Refusal r) {
            throw new WireException(NAME, r, text);
        }
    }

    private static SortedMap<Long, Long> once(SortedMap<Long, Long> before, SortedMap<Long, Long> now)
            throws Refusal {
        if (before != null) {
            throw Refusal.duplicate("part");
        }
        return now;
    }

    /** Reads what it can; refuses only a value over the caps. */
    public static Lenient<Traffic> parseLenient(String text) throws WireException {
        try {
            Refusal.checkLength(text, MAX_LENGTH);
            SortedMap<Long, Long> accepted = new TreeMap<>();
            SortedMap<Long, Long> retired = new TreeMap<>();
            String client = null;
            int[] skipped = {0};
            for (String part : text.split(";", -1)) {
                int eq = part.indexOf('=');
                if (eq < 0) {
                    skipped[0]++;
                    continue;
                }
                String value = part.substring(eq + 1);
                switch (Refusal.ows(part.substring(0, eq))) {
                    case "accepted" -> accepted = lenientCounts(value, skipped);
                    case "retired" -> retired = lenientCounts(value, skipped);
                    case "client" -> {
                        try {
                            client = IpAddresses.canonical(Refusal.ows(value));
                        } catch (Refusal r) {
                            client = null;
                            skipped[0]++;
                        }
                    }
                    default -> { }
                }
            }
            return new Lenient<>(new Traffic(accepted, retired, client), skipped[0]);
        } catch (Refusal r) {
            throw new WireException(NAME, r, text);
        }
    }

    /** An unknown part: a name of letters, digits and {@code -}, and printable ASCII. */
    private static void extension(String name, String value) throws Refusal {
        if (name.isEmpty() || !name.chars().allMatch(c -> c < 0x80 && (Character.isLetterOrDigit(c) || c == '-'))) {
            throw Refusal.syntax("a part's name is not letters, digits and -");
        }
        if (!value.chars().allMatch(c -> c >= 0x20 && c <= 0x7e)) {
            throw Refusal.syntax("a part's value is not printable ASCII");
        }
    }

    private static SortedMap<Long, Long> strictCounts(String list) throws Refusal {
        TreeMap<Long, Long> out = new TreeMap<>(Numbers.ORDER);
        for (String piece : Refusal.pieces(list, MAX_COUNTS)) {
            int colon = piece.indexOf(':');
            if (colon < 0) {
                throw Refusal.syntax("a count is not <version>:<count>");
            }
            long version = Numbers.decimal(piece.substring(0, colon), "version");
            long count = Numbers.decimal(piece.substring(colon + 1), "count");
            if (out.put(version, count) != null) {
                throw Refusal.duplicate("version");
            }
        }
        return out;
    }

    private static SortedMap<Long, Long> lenientCounts(String list, int[] skipped) throws Refusal {
        TreeMap<Long, Long> out = new TreeMap<>(Numbers.ORDER);
        for (String piece : Refusal.pieces(Refusal.ows(list), MAX_COUNTS)) {
            int colon = piece.indexOf(':');
            try {
                if (colon < 0) {
                    throw Refusal.syntax("no :");
                }
                long version = Numbers.decimal(Refusal.ows(piece.substring(0, colon)), "version");
                long count = Numbers.decimal(Refusal.ows(piece.substring(colon + 1)), "count");
                out.put(version, count);
            } catch (Refusal r) {
                skipped[0]++;
            }
        }
        return out;
    }

    /** The written form: {@code accepted=...;retired=...}, then {@code ;client=...} when there is one. */
    public String format() {
        StringBuilder out = new StringBuilder("accepted=");
        counts(out, accepted);
        out.append(";retired=");
        counts(out, retired);
        if (client != null) {
            out.append(";client=").append(client);
        }
        return out.toString();
    }

    private static void counts(StringBuilder out, SortedMap<Long, Long> counts) {
        boolean first = true;
        for (Map.Entry<Long, Long> e : counts.entrySet()) {
            if (!first) {
                out.append(',');
            }
            first = false;
            out.append(Numbers.format(e.getKey())).append(':').append(Numbers.format(e.getValue()));
        }
    }

    @Override
    public String toString() {
        return "Traffic[" + format() + "]";
    }
}
