package dev.keyrotor.consumer.wire;

/**
 * A value's part broke its grammar: the error class and a reason that never quotes the
 * input. Thrown inside the codecs (cheaply: no stack trace, lenient readings skip many) and
 * turned into a {@link WireException} at their edge.
 */
final class Refusal extends Exception {
    private static final long serialVersionUID = 1L;

    final WireException.Kind kind;

    Refusal(WireException.Kind kind, String reason) {
        super(reason, null, false, false);
        this.kind = kind;
    }

    static Refusal syntax(String reason) {
        return new Refusal(WireException.Kind.SYNTAX, reason);
    }

    static Refusal outOfRange(String what) {
        return new Refusal(WireException.Kind.OUT_OF_RANGE, what + " is out of range");
    }

    static Refusal duplicate(String what) {
        return new Refusal(WireException.Kind.DUPLICATE, what + " appears twice");
    }

    /** Refuses {@code text} when its UTF-8 form is longer than {@code max} bytes. */
    static void checkLength(String text, int max) throws Refusal {
        // A UTF-16 unit is at least one UTF-8 byte: a long string is refused before it is read.
        if (text.length() > max || utf8Length(text) > max) {
            throw new Refusal(WireException.Kind.TOO_LONG, "longer than " + max + " bytes");
        }
    }

    private static long utf8Length(String text) {
        long bytes = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c < 0x80) {
                bytes += 1;
            } else if (c < 0x800) {
                bytes += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < text.length()
                    && Character.isLowSurrogate(text.charAt(i + 1))) {
                bytes += 4;
                i++;
            } else {
                bytes += 3;
            }
        }
        return bytes;
    }

    /** The comma-separated pieces of {@code list}, none for the empty list, within {@code max}. */
    static String[] pieces(String list, int max) throws Refusal {
        if (list.isEmpty()) {
            return new String[0];
        }
        long count = list.chars().filter(c -> c == ',').count() + 1;
        if (count > max) {
            throw new Refusal(WireException.Kind.TOO_MANY, "more than " + max + " entries");
        }
        return list.split(",", -1);
    }

    /** {@code text} without the spaces and tabs around it ({@code ows}). */
    static String ows(String text) {
        int from = 0;
        int to = text.length();
        while (from < to && (text.charAt(from) == ' ' || text.charAt(from) == '\t')) {
            from++;
        }
        while (to > from && (text.charAt(to - 1) == ' ' || text.charAt(to - 1) == '\t')) {
            to--;
        }
        return text.substring(from, to);
    }
}
