package dev.keyrotor.consumer.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Instant;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** What the fixtures do not cover: hostile input, errors' excerpts, round trips of random values. */
class CodecTest {
    @Test
    void an_error_quotes_a_bounded_escaped_prefix_only() {
        String hostile = "\u0007\"" + "x".repeat(100_000);
        WireException e = assertThrows(WireException.class, () -> Nudge.parse(hostile));
        assertEquals("too-long", e.errorClass());
        e = assertThrows(WireException.class, () -> LastSeen.parse(hostile.substring(0, 300)));
        String shown = e.getMessage();
        assertTrue(shown.length() < 150, shown);
        assertTrue(shown.contains("\\u{7}\\\"") && shown.endsWith("…"), shown);
        assertEquals("last-seen", e.annotation());
    }

    @Test
    void numbers_are_ascii_digits_within_64_bits() {
        assertEquals(OptionalLong.of(7), Numbers.parse("007"));
        assertEquals(OptionalLong.of(-1), Numbers.parse("18446744073709551615"));
        assertEquals("18446744073709551615", Numbers.format(-1));
        for (String bad : new String[] {"", "+5", "-1", " 5", "5 ", "1e3", "٣", "000000000000000000001", "18446744073709551616"}) {
            assertEquals(OptionalLong.empty(), Numbers.parse(bad), bad);
        }
    }

    @Test
    void ip_addresses_are_written_in_their_canonical_form() throws Exception {
        Map<String, String> canonical = Map.of(
                "10.0.0.5", "10.0.0.5",
                "::", "::",
                "0:0:0:0:0:0:0:1", "::1",
                "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1",
                "2001:0db8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1",
                "1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0",
                "::ffff:1.2.3.4", "::ffff:1.2.3.4",
                "1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0",
                "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304");
        for (Map.Entry<String, String> c : canonical.entrySet()) {
            assertEquals(c.getValue(), IpAddresses.canonical(c.getKey()), c.getKey());
        }
        for (String bad : new String[] {"", "1.2.3", "256.0.0.1", "01.2.3.4", "1.2.3.4.", ":::", "1::2::3",
                "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "::1.2.3.4:5", "1.2.3.4::", "g::1", "::%1", "１::"}) {
            assertThrows(Refusal.class, () -> IpAddresses.canonical(bad), bad);
        }
    }

    @Test
    void random_values_within_the_caps_round_trip() throws Exception {
        Random random = new Random(42);
        for (int round = 0; round < 200; round++) {
            TreeMap<Long, Instant> seen = new TreeMap<>(Numbers.ORDER);
            TreeMap<Long, Long> counts = new TreeMap<>(Numbers.ORDER);
            int n = random.nextInt(LastSeen.MAX_ENTRIES + 1);
            for (int i = 0; i < n; i++) {
                long seconds = Times.EARLIEST.getEpochSecond()
                        + (long) (random.nextDouble() * (Times.LATEST.getEpochSecond() - Times.EARLIEST.getEpochSecond()));
                seen.put(random.nextLong(), Instant.ofEpochSecond(seconds, random.nextInt(1_000_000_000)));
                counts.put(random.nextLong(), random.nextLong());
            }
            LastSeen last = new LastSeen(seen);
            assertTrue(last.format().length() <= LastSeen.MAX_LENGTH);
            assertEquals(last, LastSeen.parse(last.format()));
            assertEquals(new Lenient<>(last, 0), LastSeen.parseLenient(last.format()));
            Traffic traffic = new Traffic(counts, counts, round % 2 == 0 ? "2001:db8::" + Integer.toHexString(round) : null);
            assertEquals(traffic, Traffic.parse(traffic.format()));
            assertEquals(new Lenient<>(traffic, 0), Traffic.parseLenient(traffic.format()));
            long revision = random.nextLong();
            assertEquals(new RevisionReport(revision), RevisionReport.parse(new RevisionReport(revision).format()));
        }
    }

    @Test
    void random_text_is_read_or_refused_never_thrown_otherwise() {
        Random random = new Random(7);
        String alphabet = ",;=:/ accepted=retired=client=::1 2026-03-01T10:14:03Z 0123456789\t\u0000é";
        for (int round = 0; round < 2000; round++) {
            StringBuilder text = new StringBuilder();
            int len = random.nextInt(80);
            for (int i = 0; i < len; i++) {
                text.append(alphabet.charAt(random.nextInt(alphabet.length())));
            }
            String t = text.toString();
            readOrRefuse(() -> RevisionReport.parse(t));
            readOrRefuse(() -> Nudge.parse(t));
            readOrRefuse(() -> LastSeen.parse(t));
            readOrRefuse(() -> Traffic.parse(t));
            readOrRefuse(() -> LastSeen.parseLenient(t));
            readOrRefuse(() -> Traffic.parseLenient(t));
        }
    }

    private interface Parse {
        Object parse() throws WireException;
    }

    private static void readOrRefuse(Parse parse) {
        try {
            parse.parse();
        } catch (WireException e) {
            assertTrue(e.getMessage().length() < 400);
        }
    }
}
