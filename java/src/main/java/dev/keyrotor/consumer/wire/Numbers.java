package dev.keyrotor.consumer.wire;

import java.util.Comparator;
import java.util.OptionalLong;

/**
 * Every number of the contract — versions, revisions, counts, in files and annotations:
 * {@code 1*20DIGIT}, at most 2^64 − 1, no sign, no spaces. Leading zeros are read ({@code 007}
 * is 7) but never written.
 *
 * <p>Java has no unsigned 64-bit type: numbers are held in a {@code long} read as unsigned.
 * Print them with {@link #format(long)} and order them with {@link #ORDER}; versions and
 * revisions above 2^63 − 1 are legal, if unlikely.
 */
public final class Numbers {
    /** The longest number the grammar allows (2^64 − 1 has 20 digits). */
    public static final int MAX_DIGITS = 20;

    /** Unsigned order: how versions are sorted everywhere in this library. */
    public static final Comparator<Long> ORDER = Long::compareUnsigned;

    private Numbers() {}

    /** {@code text} as a number, or empty when it is not one (grammar or range). */
    public static OptionalLong parse(String text) {
        try {
            return OptionalLong.of(decimal(text, "number"));
        } catch (Refusal r) {
            return OptionalLong.empty();
        }
    }

    /** The written form: decimal, unsigned, no leading zeros. */
    public static String format(long number) {
        return Long.toUnsignedString(number);
    }

    /** A syntax error comes before a range error; {@code what} names the field. */
    static long decimal(String text, String what) throws Refusal {
        if (text.isEmpty() || text.length() > MAX_DIGITS) {
            throw Refusal.syntax(what + " is not a number");
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c < '0' || c > '9') {
                throw Refusal.syntax(what + " is not a number");
            }
        }
        try {
            return Long.parseUnsignedLong(text);
        } catch (NumberFormatException e) {
            throw Refusal.outOfRange(what);
        }
    }
}
