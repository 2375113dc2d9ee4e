package dev.keyrotor.consumer.wire;

import java.time.Instant;

/**
 * The operator's nudge on a consumer pod, {@code revision/attempt/unix-seconds}: which
 * revision the pod had not confirmed, how many nudges it was, and when. Consumers MUST NOT
 * write or remove it; they MAY read it. Strict reading only.
 *
 * @param revision an unsigned 64-bit number
 * @param attempt at most 4294967295
 * @param at whole seconds, from 1970 to {@link Times#LATEST}
 */
public record Nudge(long revision, long attempt, Instant at) {
    /** The value's name in errors and fixtures. */
    public static final String NAME = "nudge";
    /** Longest value read, in bytes (three 20-digit numbers and two slashes). */
    public static final int MAX_LENGTH = 62;

    private static final long MAX_ATTEMPT = 0xffff_ffffL;
    private static final long MAX_SECONDS = 253_402_207_200L;

    /** Reads a value; anything but the grammar is an error. */
    public static Nudge parse(String text) throws WireException {
        try {
            Refusal.checkLength(text, MAX_LENGTH);
            String[] fields = text.split("/", 3);
            if (fields.length != 3) {
                throw Refusal.syntax("expected three fields");
            }
            long revision = Numbers.decimal(fields[0], "revision");
            long attempt = Numbers.decimal(fields[1], "attempt");
            if (Long.compareUnsigned(attempt, MAX_ATTEMPT) > 0) {
                throw Refusal.outOfRange("attempt");
            }
            long seconds = Numbers.decimal(fields[2], "unix-seconds");
            if (Long.compareUnsigned(seconds, MAX_SECONDS) > 0) {
                throw Refusal.outOfRange("unix-seconds");
            }
            return new Nudge(revision, attempt, Instant.ofEpochSecond(seconds));
        } catch (Refusal r) {
            throw new WireException(NAME, r, text);
        }
    }

    /** The written form; a fraction of a second is dropped. */
    public String format() {
        return Numbers.format(revision) + "/" + Numbers.format(attempt) + "/"
                + Math.max(0, at.getEpochSecond());
    }
}
