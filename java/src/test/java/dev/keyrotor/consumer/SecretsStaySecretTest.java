package dev.keyrotor.consumer;

import static dev.keyrotor.consumer.Kubelet.key;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.NotSerializableException;
import java.io.ObjectOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Key material never reaches toString, exceptions or logs: not a key, not a digest, not a presented value. */
class SecretsStaySecretTest {
    @TempDir
    Path tmp;

    private static void assertNoSecret(String shown, List<String> secrets) {
        String lower = shown.toLowerCase(Locale.ROOT);
        for (String secret : secrets) {
            assertFalse(lower.contains(secret.toLowerCase(Locale.ROOT)), "leaked into: " + shown);
            // Not even a fragment: the first half of a key or digest.
            assertFalse(lower.contains(secret.substring(0, secret.length() / 2).toLowerCase(Locale.ROOT)),
                    "a fragment leaked into: " + shown);
        }
    }

    @Test
    void loaded_keys_and_digests_never_show_in_to_string() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        Map<String, String> combined = Kubelet.verifier("orders", 5, 3, 4);
        combined.putAll(Map.of("role", "verifier,presenter", "version", "4", "key", key(4)));
        kubelet.publish(combined);
        Options manual = new Options().noHandshake().pollInterval(Duration.ZERO);
        List<String> secrets = List.of(key(3), key(4), Kubelet.sha256Hex(key(3)), Kubelet.sha256Hex(key(4)));
        try (Verifier v = Verifier.open(kubelet.dir(), manual);
                Presenter p = Presenter.open(kubelet.dir(), manual)) {
            assertEquals(key(4), p.key().reveal());
            for (Object shown : List.of(v, p, p.key(), p.current(), v.snapshot(), p.snapshot(), v.check(key(3)))) {
                assertNoSecret(String.valueOf(shown), secrets);
            }
            assertTrue(p.current().toString().contains("version=4"), p.current().toString());
            assertThrows(NotSerializableException.class,
                    () -> new ObjectOutputStream(new ByteArrayOutputStream()).writeObject(p.key()));
        }
    }

    @Test
    void the_user_name_may_show_but_the_key_beside_it_never_does() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        Map<String, String> files = Kubelet.presenter("orders", 9, 4);
        files.put("username", "app_blue");
        kubelet.publish(files);
        try (Presenter p = Presenter.open(kubelet.dir(), new Options().noHandshake().pollInterval(Duration.ZERO))) {
            for (Object shown : List.of(p, p.current(), p.snapshot())) {
                assertNoSecret(String.valueOf(shown), List.of(key(4)));
                assertTrue(String.valueOf(shown).contains("username=app_blue"), String.valueOf(shown));
            }
        }
    }

    @Test
    void errors_about_malformed_key_and_digest_files_name_the_file_never_the_content() throws Exception {
        String almostKey = "fake test key not a secret";
        String almostDigest = Kubelet.sha256Hex(key(3)).substring(1);
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        Map<String, String> presenter = Kubelet.presenter("orders", 1, 3);
        presenter.put("key", almostKey);
        kubelet.publish(presenter);
        VolumeException bad = assertThrows(VolumeException.class, () -> Presenter.open(kubelet.dir()));
        assertEquals("malformed", bad.errorClass());
        assertTrue(bad.getMessage().contains("/key: is not a key"), bad.getMessage());
        assertNoSecret(bad.toString(), List.of(almostKey));

        Map<String, String> verifier = Kubelet.verifier("orders", 2, 3);
        verifier.put("v3.sha256", almostDigest);
        kubelet.publish(verifier);
        bad = assertThrows(VolumeException.class, () -> Verifier.open(kubelet.dir()));
        assertTrue(bad.getMessage().endsWith("v3.sha256: is not 64 hex digits"), bad.getMessage());
        assertNoSecret(bad.toString(), List.of(almostDigest));
    }

    @Test
    void nothing_of_a_presented_key_or_a_broken_reload_is_logged() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, 3));
        Path handshake = Files.createDirectories(tmp.resolve("handshake"));
        String typo = key(3).replace('k', 'x');
        String badKey = "fake-test-key-v4-not a-secret";
        try (LogCapture log = new LogCapture();
                Verifier v = Verifier.open(kubelet.dir(), new Options().handshakeDir(handshake)
                        .trafficMode(true).pollInterval(Duration.ofMillis(20)).lastSeenInterval(Duration.ofMillis(20)))) {
            for (String presented : List.of(typo, key(3), "Bearer " + typo, typo + "\u0000")) {
                v.check(presented);
            }
            Map<String, String> broken = Kubelet.verifier("orders", 2, 3, 4);
            broken.remove("v4.sha256");
            broken.put("v4.key", badKey);
            kubelet.publish(broken);
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while (!log.text().contains("v4.key") && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertTrue(log.text().contains("v4.key: is not a key"), "the failed reload is reported: " + log.text());
            assertNoSecret(log.text(), List.of(typo, key(3), badKey, Kubelet.sha256Hex(key(3))));
        }
    }
}
