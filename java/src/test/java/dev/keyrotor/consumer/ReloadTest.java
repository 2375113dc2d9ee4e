package dev.keyrotor.consumer;

import static dev.keyrotor.consumer.Kubelet.key;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Following a mounted Secret: kubelet's swaps, failed reloads, vanishing volumes, polling. */
class ReloadTest {
    @TempDir
    Path tmp;

    private static Options manual() {
        return new Options().noHandshake().pollInterval(Duration.ZERO);
    }

    @Test
    void a_key_accepted_in_both_generations_is_accepted_throughout_kubelets_swaps() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, 1, 2));
        try (Verifier verifier = Verifier.open(kubelet.dir(), manual())) {
            AtomicBoolean done = new AtomicBoolean();
            AtomicInteger refused = new AtomicInteger();
            AtomicInteger checks = new AtomicInteger();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread reader = new Thread(() -> {
                while (!done.get()) {
                    try {
                        verifier.refresh();
                    } catch (VolumeException e) {
                        // An unstable read keeps the loaded snapshot: still accepted below.
                    } catch (RuntimeException e) {
                        failure.set(e);
                    }
                    checks.incrementAndGet();
                    if (!verifier.check(key(2)).isAccepted()) {
                        refused.incrementAndGet();
                    }
                }
            });
            reader.start();
            for (long revision = 2; revision <= 200; revision++) {
                // Version 2 stays accepted; 1 and 3 come and go.
                kubelet.publish(revision % 2 == 0 ? Kubelet.verifier("orders", revision, 2, 3)
                        : Kubelet.verifier("orders", revision, 1, 2));
            }
            done.set(true);
            reader.join(10_000);
            assertEquals(null, failure.get());
            assertTrue(checks.get() > 0);
            assertEquals(0, refused.get(), "checks that refused the key both generations accept");
            verifier.refresh();
            assertEquals(200, verifier.snapshot().revision());
        }
    }

    @Test
    void a_read_that_a_swap_interrupted_is_read_again_from_the_new_generation() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, 1));
        AtomicInteger attempts = new AtomicInteger();
        Volume.Read<String> read = Volume.readConsistent(kubelet.dir(), files -> {
            String revision = files.required("revision");
            if (attempts.incrementAndGet() == 1) {
                try {
                    kubelet.publish(Kubelet.verifier("orders", 2, 1));
                } catch (IOException e) {
                    throw new AssertionError(e);
                }
                // The old generation is gone: the first outcome is discarded whatever it was.
                throw files.missing("accepted");
            }
            return revision;
        });
        assertEquals("2", read.value());
        assertEquals(2, attempts.get());
    }

    @Test
    void a_generation_that_changes_on_every_attempt_is_unstable_after_five() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, 1));
        AtomicInteger attempts = new AtomicInteger();
        VolumeException e = assertThrows(VolumeException.class, () -> Volume.readConsistent(kubelet.dir(), files -> {
            attempts.incrementAndGet();
            try {
                kubelet.publish(Kubelet.verifier("orders", 1, 1));
            } catch (IOException io) {
                throw new AssertionError(io);
            }
            return "read";
        }));
        assertEquals("unstable", e.errorClass());
        assertEquals(5, attempts.get());
    }

    @Test
    void a_failed_reload_keeps_serving_the_last_good_snapshot_and_a_good_one_replaces_it() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 7, 3, 4));
        try (Verifier verifier = Verifier.open(kubelet.dir(), manual())) {
            Map<String, String> broken = Kubelet.verifier("orders", 8, 4, 5);
            broken.put("v5.sha256", "not a digest");
            kubelet.publish(broken);
            VolumeException e = assertThrows(VolumeException.class, verifier::refresh);
            assertEquals("malformed", e.errorClass());
            assertTrue(e.getMessage().endsWith("v5.sha256: is not 64 hex digits"), e.getMessage());
            assertEquals(7, verifier.snapshot().revision());
            assertTrue(verifier.check(key(3)).isAccepted(), "the loaded keys still serve");
            assertFalse(verifier.check(key(5)).isAccepted());

            kubelet.publish(Kubelet.verifier("orders", 9, 4, 5));
            assertTrue(verifier.refresh());
            assertEquals(List.of(4L, 5L), List.copyOf(verifier.snapshot().accepted()));
            assertTrue(verifier.check(key(5)).isAccepted());
        }
    }

    @Test
    void a_volume_that_disappears_keeps_serving_the_last_snapshot() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.presenter("orders", 3, 4));
        try (Presenter presenter = Presenter.open(kubelet.dir(), manual())) {
            kubelet.vanish();
            VolumeException e = assertThrows(VolumeException.class, presenter::refresh);
            assertEquals("missing", e.errorClass());
            assertEquals(key(4), presenter.key().reveal());
            assertEquals(4, presenter.version());
        }
    }

    @Test
    void the_first_load_fails_when_nothing_is_mounted() {
        VolumeException e = assertThrows(VolumeException.class, () -> Verifier.open(tmp.resolve("absent"), manual()));
        assertEquals("missing", e.errorClass());
        assertEquals(tmp.resolve("absent").resolve("rotation"), e.file());
    }

    @Test
    void a_directory_of_the_other_role_is_refused() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.presenter("orders", 3, 4));
        VolumeException e = assertThrows(VolumeException.class, () -> Verifier.open(kubelet.dir(), manual()));
        assertEquals("malformed", e.errorClass());
        assertTrue(e.getMessage().endsWith("role: does not name verifier"), e.getMessage());
    }

    @Test
    void a_plain_directory_is_reread_and_reloaded_only_when_its_files_changed() throws Exception {
        Path dir = tmp.resolve("plain");
        Files.createDirectories(dir);
        for (Map.Entry<String, String> f : Kubelet.verifier("orders", 1, 1).entrySet()) {
            Files.writeString(dir.resolve(f.getKey()), f.getValue());
        }
        try (Verifier verifier = Verifier.open(dir, manual())) {
            assertFalse(verifier.refresh(), "nothing changed");
            for (Map.Entry<String, String> f : Kubelet.verifier("orders", 2, 1, 2).entrySet()) {
                Files.writeString(dir.resolve(f.getKey()), f.getValue());
            }
            assertTrue(verifier.refresh());
            assertTrue(verifier.check(key(2)).isAccepted());
            assertTrue(verifier.snapshot().generation().isEmpty());
        }
    }

    @Test
    void background_polling_follows_a_swap_on_a_daemon_thread() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.presenter("orders", 1, 1));
        Options options = new Options().noHandshake().pollInterval(Duration.ofMillis(50));
        try (Presenter presenter = Presenter.open(kubelet.dir(), options)) {
            kubelet.publish(Kubelet.presenter("orders", 2, 2));
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while (presenter.version() != 2 && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertEquals(2, presenter.version());
            assertEquals(key(2), presenter.key().reveal());
            Set<Thread> threads = Thread.getAllStackTraces().keySet();
            assertTrue(threads.stream().filter(t -> t.getName().equals("keyrotor-reload")).allMatch(Thread::isDaemon),
                    "the poller never keeps the JVM alive");
        }
    }

    @Test
    void a_huge_file_is_refused_without_being_read_whole() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        String generation = kubelet.publish(Kubelet.verifier("orders", 1, 1));
        try (RandomAccessFile f = new RandomAccessFile(kubelet.dir().resolve(generation).resolve("accepted").toFile(), "rw")) {
            f.setLength(8L << 30); // sparse: 8 GiB that a whole read could not hold
        }
        long start = System.nanoTime();
        VolumeException e = assertThrows(VolumeException.class, () -> Snapshot.load(kubelet.dir()));
        assertEquals("malformed", e.errorClass());
        assertTrue(e.getMessage().endsWith("accepted: is larger than 4096 bytes"), e.getMessage());
        assertTrue(System.nanoTime() - start < Duration.ofSeconds(5).toNanos());
    }

    @Test
    void a_file_that_cannot_be_read_is_an_io_error() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        String generation = kubelet.publish(Kubelet.verifier("orders", 1, 1));
        Path accepted = kubelet.dir().resolve(generation).resolve("accepted");
        Files.delete(accepted);
        Files.createDirectory(accepted);
        VolumeException e = assertThrows(VolumeException.class, () -> Snapshot.load(kubelet.dir()));
        assertEquals("io", e.errorClass());
        assertEquals(accepted, e.file());
    }
}
