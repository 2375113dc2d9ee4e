package dev.keyrotor.consumer.wire;

/**
 * The revision of a role's projected Secret that the process has loaded: the value of
 * {@code <rotation>.keyrotor.dev/<role>-revision} and of the handshake file
 * {@code <rotation>.<role>-revision}. Strict reading only.
 *
 * @param revision an unsigned 64-bit number
 */
public record RevisionReport(long revision) {
    /** The value's name in errors and fixtures. */
    public static final String NAME = "revision report";
    /** Longest value read, in bytes. */
    public static final int MAX_LENGTH = 20;

    /** Reads a value; anything but the grammar is an error. */
    public static RevisionReport parse(String text) throws WireException {
        try {
            Refusal.checkLength(text, MAX_LENGTH);
            return new RevisionReport(Numbers.decimal(text, "revision"));
        } catch (Refusal r) {
            throw new WireException(NAME, r, text);
        }
    }

    /** The written form. */
    public String format() {
        return Numbers.format(revision);
    }

    @Override
    public String toString() {
        return "RevisionReport[" + format() + "]";
    }
}
