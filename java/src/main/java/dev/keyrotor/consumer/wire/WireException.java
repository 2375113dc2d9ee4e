package dev.keyrotor.consumer.wire;

/**
 * Why an annotation or handshake value was refused: the value's name, the error class of
 * docs/wire.md, and a reason. The message quotes at most {@value #EXCERPT_CHARS} characters of
 * the value, escaped: pod annotations are not secret, but they may be hostile (long, or full
 * of control characters).
 */
public final class WireException extends Exception {
    private static final long serialVersionUID = 1L;

    /** How many characters of a refused value a message quotes. */
    public static final int EXCERPT_CHARS = 32;

    /** The language-neutral error classes of docs/wire.md. */
    public enum Kind {
        /** Longer than the value's length cap, in bytes; refused before it is read. */
        TOO_LONG("too-long"),
        /** More entries than the value's entry cap. */
        TOO_MANY("too-many"),
        /** Does not match the grammar. */
        SYNTAX("syntax"),
        /** Matches the grammar, but a number or time is out of its range. */
        OUT_OF_RANGE("out-of-range"),
        /** A version (or part) that may appear once appears twice. */
        DUPLICATE("duplicate");

        private final String wireName;

        Kind(String wireName) {
            this.wireName = wireName;
        }

        /** The class as docs/wire.md and the fixtures spell it ({@code too-long}, ...). */
        public String wireName() {
            return wireName;
        }
    }

    private final String annotation;
    private final Kind kind;

    WireException(String annotation, Refusal refusal, String input) {
        super("malformed " + annotation + " value (" + refusal.kind.wireName() + ": "
                + refusal.getMessage() + "): " + excerpt(input));
        this.annotation = annotation;
        this.kind = refusal.kind;
    }

    /** Which value: {@code revision report}, {@code nudge}, {@code last-seen} or {@code traffic}. */
    public String annotation() {
        return annotation;
    }

    public Kind kind() {
        return kind;
    }

    /** The error class as docs/wire.md spells it. */
    public String errorClass() {
        return kind.wireName();
    }

    /** At most {@link #EXCERPT_CHARS} code points of {@code input}, quoted and escaped. */
    static String excerpt(String input) {
        StringBuilder out = new StringBuilder("\"");
        int shown = 0;
        int i = 0;
        while (i < input.length() && shown < EXCERPT_CHARS) {
            int c = input.codePointAt(i);
            i += Character.charCount(c);
            shown++;
            if (c == '"' || c == '\\') {
                out.append('\\').appendCodePoint(c);
            } else if (c >= 0x20 && c < 0x7f) {
                out.appendCodePoint(c);
            } else {
                out.append("\\u{").append(Integer.toHexString(c)).append('}');
            }
        }
        out.append('"');
        if (i < input.length()) {
            out.append('…');
        }
        return out.toString();
    }
}
