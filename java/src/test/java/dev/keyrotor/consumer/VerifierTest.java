package dev.keyrotor.consumer;

import static dev.keyrotor.consumer.Kubelet.key;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.keyrotor.consumer.wire.LastSeen;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Verifying presented keys: accepted, retired or unknown, in constant time. */
class VerifierTest {
    @TempDir
    Path tmp;

    private static Options manual() {
        return new Options().noHandshake().pollInterval(Duration.ZERO);
    }

    @Test
    void an_accepted_key_is_its_version_and_anything_else_is_refused() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 7, 3, 4));
        try (Verifier v = Verifier.open(kubelet.dir(), manual())) {
            assertEquals(new Check.Accepted(3), v.check(key(3)));
            assertEquals(OptionalLong.of(4), v.verify(key(4)));
            assertEquals(Check.UNKNOWN, v.check(key(5)));
            assertEquals(Check.UNKNOWN, v.check(key(3) + "x"));
            assertEquals(Check.UNKNOWN, v.check(key(3).substring(1)));
            assertEquals(Check.UNKNOWN, v.check((String) null));
            assertEquals(new Check.Accepted(4), v.check(key(4).getBytes(StandardCharsets.US_ASCII)));
        }
    }

    @Test
    void a_retired_version_is_told_apart_from_an_unknown_key_and_never_accepted() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 7, 3, 4));
        try (Verifier v = Verifier.open(kubelet.dir(), manual())) {
            kubelet.publish(Kubelet.verifier("orders", 8, 4, 5));
            assertTrue(v.refresh());
            assertEquals(new Check.Retired(3), v.check(key(3)));
            assertEquals(OptionalLong.empty(), v.verify(key(3)));
            assertEquals(new Check.Accepted(5), v.check(key(5)));
            assertEquals(Check.UNKNOWN, v.check(key(2)), "never seen accepted here: unknown");
            assertEquals(List.of(3L), List.copyOf(v.retiredVersions()));
        }
    }

    @Test
    void a_version_accepted_again_after_a_rollback_is_no_longer_retired() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, 3, 4));
        try (Verifier v = Verifier.open(kubelet.dir(), manual())) {
            kubelet.publish(Kubelet.verifier("orders", 2, 4));
            v.refresh();
            kubelet.publish(Kubelet.verifier("orders", 3, 3, 4));
            v.refresh();
            assertEquals(new Check.Accepted(3), v.check(key(3)));
            assertTrue(v.retiredVersions().isEmpty());
        }
    }

    @Test
    void only_the_newest_eight_retired_versions_are_remembered() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, 1));
        try (Verifier v = Verifier.open(kubelet.dir(), manual())) {
            for (long version = 2; version <= 12; version++) {
                kubelet.publish(Kubelet.verifier("orders", version, version));
                v.refresh();
            }
            assertEquals(List.of(4L, 5L, 6L, 7L, 8L, 9L, 10L, 11L), List.copyOf(v.retiredVersions()));
            assertEquals(new Check.Retired(4), v.check(key(4)));
            assertEquals(Check.UNKNOWN, v.check(key(3)));
        }
    }

    @Test
    void a_value_that_cannot_be_a_key_is_refused_even_when_its_digest_is_listed() throws Exception {
        // Digests of values keyrotor never issues: too short, with a space, not ASCII, too long.
        List<String> notKeys = List.of("short", "fake test key not a secret", "fake-test-kéy-not-a-secret",
                "k".repeat(1025));
        Map<String, String> files = Kubelet.verifier("orders", 1);
        StringBuilder accepted = new StringBuilder();
        for (int i = 0; i < notKeys.size(); i++) {
            files.put("v" + (i + 1) + ".sha256", Kubelet.sha256Hex(notKeys.get(i)));
            accepted.append(i == 0 ? "" : ",").append(i + 1);
        }
        files.put("accepted", accepted.toString());
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(files);
        try (Verifier v = Verifier.open(kubelet.dir(), manual())) {
            assertEquals(4, v.snapshot().accepted().size());
            for (String value : notKeys) {
                assertEquals(Check.UNKNOWN, v.check(value), "refused before hashing");
                assertEquals(Check.UNKNOWN, v.check(value.getBytes(StandardCharsets.UTF_8)));
            }
        }
    }

    @Test
    void the_constant_time_search_compares_every_digest_and_selects_the_match() {
        byte[][] digests = new byte[5][32];
        for (int i = 0; i < digests.length; i++) {
            digests[i][31] = (byte) i;
            digests[i][0] = (byte) 0x80;
        }
        for (int i = 0; i < digests.length; i++) {
            assertEquals(i, Verifier.find(digests, digests[i].clone()));
        }
        byte[] other = digests[2].clone();
        other[0] ^= 1;
        assertEquals(-1, Verifier.find(digests, other), "one bit differs: no match");
        other = digests[2].clone();
        other[31] = (byte) 0xff;
        assertEquals(-1, Verifier.find(digests, other), "the last byte differs: no match");
        assertEquals(-1, Verifier.find(new byte[0][], other));
    }

    @Test
    void traffic_mode_records_when_each_accepted_version_was_last_presented() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, 3, 4));
        try (Verifier v = Verifier.open(kubelet.dir(), manual().trafficMode(true))) {
            Instant before = Instant.now().minusSeconds(1);
            v.check(key(3));
            v.check(key(9));
            Instant after = Instant.now().plusSeconds(1);
            LastSeen seen = v.lastSeen();
            assertEquals(List.of(3L), List.copyOf(seen.seen().keySet()));
            Instant at = seen.seen().get(3L);
            assertEquals(0, at.getNano(), "whole seconds");
            assertTrue(!at.isBefore(before) && !at.isAfter(after), at.toString());

            kubelet.publish(Kubelet.verifier("orders", 2, 4));
            v.refresh();
            assertTrue(v.lastSeen().seen().isEmpty(), "a retired version is no longer reported");
        }
        try (Verifier v = Verifier.open(kubelet.dir(), manual())) {
            v.check(key(4));
            assertTrue(v.lastSeen().seen().isEmpty(), "nothing is recorded outside Traffic mode");
        }
    }
}
