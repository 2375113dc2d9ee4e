package dev.keyrotor.consumer.wire;

import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;

/**
 * The contract's {@code date-time}: RFC 3339 (section 5.6) with an upper-case {@code T} and
 * {@code Z}, at most nine fraction digits, no leap second, between {@link #EARLIEST} and
 * {@link #LATEST}. Written in UTC with {@code Z}, the fraction only when it is not zero and
 * without trailing zeros ({@code 2026-03-01T10:14:03.25Z}).
 */
public final class Times {
    /** {@code 0000-01-01T00:00:00Z}: earlier instants have no RFC 3339 form. */
    public static final Instant EARLIEST = Instant.ofEpochSecond(-62_167_219_200L);
    /** {@code 9999-12-30T22:00:00.999999999Z}: the latest instant every implementation holds. */
    public static final Instant LATEST = Instant.ofEpochSecond(253_402_207_200L, 999_999_999);

    private static final String WHAT = "time is not an RFC 3339 date-time";

    private Times() {}

    /** The written form of {@code at}, in UTC. */
    public static String format(Instant at) {
        LocalDateTime t = LocalDateTime.ofEpochSecond(at.getEpochSecond(), 0, ZoneOffset.UTC);
        StringBuilder out = new StringBuilder(32);
        pad(out, t.getYear(), 4).append('-');
        pad(out, t.getMonthValue(), 2).append('-');
        pad(out, t.getDayOfMonth(), 2).append('T');
        pad(out, t.getHour(), 2).append(':');
        pad(out, t.getMinute(), 2).append(':');
        pad(out, t.getSecond(), 2);
        int nanos = at.getNano();
        if (nanos != 0) {
            StringBuilder fraction = new StringBuilder();
            pad(fraction, nanos, 9);
            int end = fraction.length();
            while (fraction.charAt(end - 1) == '0') {
                end--;
            }
            out.append('.').append(fraction, 0, end);
        }
        return out.append('Z').toString();
    }

    private static StringBuilder pad(StringBuilder out, int value, int width) {
        String digits = Integer.toString(Math.abs(value));
        if (value < 0) {
            out.append('-');
        }
        out.append("0".repeat(Math.max(0, width - digits.length())));
        return out.append(digits);
    }

    /** Reads a {@code date-time}: a bad shape is {@code syntax}, a bad day or range {@code out-of-range}. */
    static Instant parse(String text) throws Refusal {
        int year = num(text, 0, 4);
        int month = num(text, 5, 2);
        int day = num(text, 8, 2);
        int hour = num(text, 11, 2);
        int minute = num(text, 14, 2);
        int second = num(text, 17, 2);
        boolean shape = year >= 0 && at(text, 4, '-') && month >= 1 && month <= 12
                && at(text, 7, '-') && day >= 1 && day <= 31 && at(text, 10, 'T')
                && hour >= 0 && hour <= 23 && at(text, 13, ':') && minute >= 0 && minute <= 59
                && at(text, 16, ':') && second >= 0 && second <= 59;
        if (!shape) {
            throw Refusal.syntax(WHAT);
        }
        int i = 19;
        int nanos = 0;
        if (at(text, i, '.')) {
            int digits = 0;
            while (i + 1 + digits < text.length() && isDigit(text.charAt(i + 1 + digits))) {
                digits++;
            }
            if (digits < 1 || digits > 9) {
                throw Refusal.syntax(WHAT);
            }
            nanos = Integer.parseInt(text.substring(i + 1, i + 1 + digits) + "0".repeat(9 - digits));
            i += 1 + digits;
        }
        long offset = offsetSeconds(text, i);
        long seconds;
        try {
            seconds = LocalDate.of(year, month, day).toEpochDay() * 86_400L
                    + hour * 3_600L + minute * 60L + second - offset;
        } catch (DateTimeException e) {
            throw Refusal.outOfRange("time");
        }
        Instant instant = Instant.ofEpochSecond(seconds, nanos);
        if (instant.isBefore(EARLIEST) || instant.isAfter(LATEST)) {
            throw Refusal.outOfRange("time");
        }
        return instant;
    }

    /** The offset that starts at {@code i} and ends the text, in seconds east of UTC. */
    private static long offsetSeconds(String text, int i) throws Refusal {
        if (at(text, i, 'Z') && text.length() == i + 1) {
            return 0;
        }
        if ((at(text, i, '+') || at(text, i, '-')) && text.length() == i + 6) {
            int hours = num(text, i + 1, 2);
            int minutes = num(text, i + 4, 2);
            if (hours >= 0 && hours <= 23 && at(text, i + 3, ':') && minutes >= 0 && minutes <= 59) {
                long seconds = hours * 3_600L + minutes * 60L;
                return text.charAt(i) == '-' ? -seconds : seconds;
            }
        }
        throw Refusal.syntax(WHAT);
    }

    /** The ASCII digits at {@code from..from+len} as a number, or -1. */
    private static int num(String text, int from, int len) {
        if (from + len > text.length()) {
            return -1;
        }
        int n = 0;
        for (int i = from; i < from + len; i++) {
            char c = text.charAt(i);
            if (!isDigit(c)) {
                return -1;
            }
            n = n * 10 + (c - '0');
        }
        return n;
    }

    private static boolean at(String text, int i, char c) {
        return i < text.length() && text.charAt(i) == c;
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }
}
