package dev.keyrotor.consumer;

import static dev.keyrotor.consumer.Kubelet.key;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.keyrotor.consumer.wire.LastSeen;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Confirming what the process loaded through the handshake directory. */
class HandshakeTest {
    @TempDir
    Path tmp;

    private Path handshake() throws Exception {
        return Files.createDirectories(tmp.resolve("run-keyrotor"));
    }

    private Options options(Path handshake) {
        return new Options().handshakeDir(handshake).pollInterval(Duration.ZERO);
    }

    @Test
    void files_a_stopped_process_left_are_removed_before_the_first_load() throws Exception {
        Path handshake = handshake();
        Files.writeString(handshake.resolve("orders.verifier-revision"), "99");
        Files.writeString(handshake.resolve("orders.last-seen"), "1=2026-03-01T10:00:00Z");
        Files.writeString(handshake.resolve("billing.verifier-revision"), "5");
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        Map<String, String> broken = Kubelet.verifier("orders", 7, 3);
        broken.put("v3.sha256", "0");
        kubelet.publish(broken);
        assertThrows(VolumeException.class, () -> Verifier.open(kubelet.dir(), options(handshake).trafficMode(true)));
        assertEquals(Set.of("billing.verifier-revision"), ConformanceTest.names(handshake),
                "nothing is claimed for a process that loaded nothing; other rotations are left alone");

        kubelet.publish(Kubelet.verifier("orders", 8, 3));
        try (Verifier v = Verifier.open(kubelet.dir(), options(handshake))) {
            assertEquals(8, v.snapshot().revision());
            assertEquals("8", Files.readString(handshake.resolve("orders.verifier-revision")));
        }
    }

    @Test
    void the_revision_is_written_after_each_reload_and_only_when_it_changed() throws Exception {
        Path handshake = handshake();
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 7, 3));
        try (Verifier v = Verifier.open(kubelet.dir(), options(handshake))) {
            Path file = handshake.resolve("orders.verifier-revision");
            assertEquals("7", Files.readString(file));
            Object inode = Files.getAttribute(file, "unix:ino");
            assertFalse(v.refresh());
            assertEquals(inode, Files.getAttribute(file, "unix:ino"), "a steady state writes nothing");

            kubelet.publish(Kubelet.verifier("orders", 8, 3, 4));
            assertTrue(v.refresh());
            assertEquals("8", Files.readString(file));
            assertEquals(Set.of("orders.verifier-revision"), ConformanceTest.names(handshake),
                    "no temporary file is left behind");
        }
    }

    @Test
    void a_failed_reload_claims_nothing_more_than_the_process_holds() throws Exception {
        Path handshake = handshake();
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.presenter("orders", 7, 3));
        try (Presenter p = Presenter.open(kubelet.dir(), options(handshake))) {
            Map<String, String> broken = Kubelet.presenter("orders", 8, 4);
            broken.put("key", "short");
            kubelet.publish(broken);
            assertThrows(VolumeException.class, p::refresh);
            assertEquals("7", Files.readString(handshake.resolve("orders.presenter-revision")));
            assertEquals(3, p.version());
        }
    }

    @Test
    void a_combined_secret_is_confirmed_under_both_roles() throws Exception {
        Path handshake = handshake();
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        Map<String, String> combined = Kubelet.verifier("orders", 5, 3, 4);
        combined.putAll(Map.of("role", "verifier,presenter", "version", "4", "key", key(4)));
        kubelet.publish(combined);
        try (Verifier v = Verifier.open(kubelet.dir(), options(handshake))) {
            assertEquals(List.of("verifier", "presenter"), v.snapshot().roles());
            assertEquals("5", Files.readString(handshake.resolve("orders.verifier-revision")));
            assertEquals("5", Files.readString(handshake.resolve("orders.presenter-revision")));
        }
    }

    @Test
    void a_process_holding_one_rotation_twice_confirms_the_lower_revision() throws Exception {
        Path handshake = handshake();
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        Map<String, String> combined = Kubelet.verifier("orders", 5, 3, 4);
        combined.putAll(Map.of("role", "verifier,presenter", "version", "4", "key", key(4)));
        kubelet.publish(combined);
        Path verifierFile = handshake.resolve("orders.verifier-revision");
        Path presenterFile = handshake.resolve("orders.presenter-revision");
        try (Verifier v = Verifier.open(kubelet.dir(), options(handshake))) {
            Presenter p = Presenter.open(kubelet.dir(), options(handshake));
            assertEquals("5", Files.readString(verifierFile), "the second open left the first one's file");
            combined.put("revision", "6");
            kubelet.publish(combined);
            assertTrue(v.refresh());
            assertEquals("5", Files.readString(presenterFile), "the presenter still sends revision 5's key");
            assertEquals("5", Files.readString(verifierFile));
            assertTrue(p.refresh());
            assertEquals("6", Files.readString(presenterFile));
            assertEquals("6", Files.readString(verifierFile));
            combined.put("revision", "7");
            kubelet.publish(combined);
            assertTrue(v.refresh());
            p.close();
            assertEquals("7", Files.readString(presenterFile), "a closed presenter no longer holds anything back");
        }
    }

    @Test
    void a_handshake_directory_that_cannot_be_written_never_crashes_and_is_retried() throws Exception {
        Path handshake = tmp.resolve("not-yet");
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 7, 3));
        try (LogCapture log = new LogCapture();
                Verifier v = Verifier.open(kubelet.dir(), options(handshake))) {
            assertTrue(v.check(key(3)).isAccepted(), "the process serves without its handshake");
            assertTrue(log.text().contains("cannot write handshake file " + handshake.resolve("orders.verifier-revision")),
                    log.text());
            assertEquals(1, log.lines().stream().filter(l -> l.contains("cannot write")).count());
            v.refresh();
            assertEquals(1, log.lines().stream().filter(l -> l.contains("cannot write")).count(), "logged once");

            Files.createDirectories(handshake);
            v.refresh();
            assertEquals("7", Files.readString(handshake.resolve("orders.verifier-revision")));
        }
    }

    @Test
    void traffic_mode_writes_last_seen_in_its_written_form_and_never_an_empty_one() throws Exception {
        Path handshake = handshake();
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 7, 3, 4));
        Options options = options(handshake).trafficMode(true).lastSeenInterval(Duration.ofMillis(50));
        try (Verifier v = Verifier.open(kubelet.dir(), options)) {
            Thread.sleep(200);
            assertFalse(Files.exists(handshake.resolve("orders.last-seen")), "no version seen: nothing written");
            v.check(key(4));
            Path file = handshake.resolve("orders.last-seen");
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while (!Files.exists(file) && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            LastSeen seen = LastSeen.parse(Files.readString(file));
            assertEquals(List.of(4L), List.copyOf(seen.seen().keySet()));
            assertEquals(seen.format(), Files.readString(file));
        }
    }

    @Test
    void last_seen_keeps_at_most_256_versions_the_newest() throws Exception {
        long[] versions = new long[300];
        for (int i = 0; i < versions.length; i++) {
            versions[i] = i + 1;
        }
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, versions));
        Path handshake = handshake();
        try (Verifier v = Verifier.open(kubelet.dir(), options(handshake).trafficMode(true))) {
            for (long version : versions) {
                assertTrue(v.check(key(version)).isAccepted());
            }
        }
        String written = Files.readString(handshake.resolve("orders.last-seen"));
        LastSeen seen = LastSeen.parse(written);
        assertEquals(256, seen.seen().size());
        assertEquals(45L, seen.seen().firstKey());
        assertTrue(written.length() <= LastSeen.MAX_LENGTH);
    }

    @Test
    void a_rotation_name_that_cannot_name_a_file_writes_nothing() throws Exception {
        Path handshake = handshake();
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("../escape", 7, 3));
        try (LogCapture log = new LogCapture();
                Verifier v = Verifier.open(kubelet.dir(), options(handshake))) {
            assertTrue(v.check(key(3)).isAccepted());
            assertTrue(ConformanceTest.names(handshake).isEmpty());
            assertFalse(Files.exists(tmp.resolve("escape.verifier-revision")));
            assertTrue(log.text().contains("cannot name a handshake file"), log.text());
        }
    }

    @Test
    void the_directory_comes_from_the_environment_unless_configured() {
        Map<String, String> env = Map.of("KEYROTOR_HANDSHAKE_DIR", "/run/keyrotor");
        assertEquals(Optional.of(Path.of("/run/keyrotor")), new Options().handshakeDir(env));
        assertEquals(Optional.empty(), new Options().handshakeDir(Map.of()));
        assertEquals(Optional.empty(), new Options().handshakeDir(Map.of("KEYROTOR_HANDSHAKE_DIR", "")));
        assertEquals(Optional.of(Path.of("/x")), new Options().handshakeDir(Path.of("/x")).handshakeDir(env));
        assertEquals(Optional.empty(), new Options().noHandshake().handshakeDir(env));
    }
}
