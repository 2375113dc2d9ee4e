package dev.keyrotor.consumer;

import static dev.keyrotor.consumer.Kubelet.key;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The example apps as processes on loopback: a verifier server and a presenter client, each
 * caching its key in memory through the library, through one rotation driven as keyrotor
 * drives it (each step waits for the handshake file that confirms the previous one): no
 * request is rejected, and the retired key is then refused as retired.
 */
class ExamplesTest {
    private static final Path EXAMPLES = Path.of(System.getProperty("keyrotor.examples", "examples"));
    private static final Path CLASSES = Path.of(System.getProperty("keyrotor.classes", "target/classes"));
    private static final Duration WAIT = Duration.ofSeconds(15);

    @TempDir
    Path tmp;
    private final List<Process> processes = new ArrayList<>();
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    @AfterEach
    void stop() throws InterruptedException {
        for (Process p : processes) {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private Process start(String main, Path out, Map<String, String> env) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", CLASSES + java.io.File.pathSeparator + tmp.resolve("examples"), main);
        pb.environment().remove("KEYROTOR_HANDSHAKE_DIR");
        pb.environment().putAll(env);
        pb.redirectErrorStream(true).redirectOutput(out.toFile());
        Process p = pb.start();
        processes.add(p);
        return p;
    }

    private HttpResponse<String> get(String url, String authorization) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5));
        if (authorization != null) {
            request.header("Authorization", authorization);
        }
        return http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    }

    /** Waits until {@code file} says {@code revision}: the process confirmed it loaded it. */
    private static void confirmed(Path file, String revision) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (System.nanoTime() < deadline) {
            if (Files.exists(file) && Files.readString(file).equals(revision)) {
                return;
            }
            Thread.sleep(20);
        }
        throw new AssertionError(file + " never said " + revision);
    }

    private void up(String url, Path log) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (System.nanoTime() < deadline) {
            try {
                get(url, null);
                return;
            } catch (IOException e) {
                Thread.sleep(50);
            }
        }
        throw new AssertionError(url + " never answered: " + Files.readString(log));
    }

    @Test
    void a_rotation_under_load_rejects_nothing_and_the_retired_key_is_refused() throws Exception {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertTrue(javac != null, "the tests need a JDK (javac), not a bare runtime");
        Files.createDirectories(tmp.resolve("examples"));
        int compiled = javac.run(null, null, null, "-Xlint:all", "-Werror", "-cp", CLASSES.toString(), "-d",
                tmp.resolve("examples").toString(), EXAMPLES.resolve("VerifierServer.java").toString(),
                EXAMPLES.resolve("PresenterClient.java").toString());
        assertEquals(0, compiled, "the examples compile against the library");

        Kubelet verifierKeys = new Kubelet(tmp.resolve("verifier-keys"));
        Kubelet presenterKeys = new Kubelet(tmp.resolve("presenter-keys"));
        Path verifierHandshake = Files.createDirectories(tmp.resolve("verifier-run"));
        Path presenterHandshake = Files.createDirectories(tmp.resolve("presenter-run"));
        verifierKeys.publish(Kubelet.verifier("orders", 1, 1));
        presenterKeys.publish(Kubelet.presenter("orders", 1, 1));

        int apiPort = freePort();
        int countsPort = freePort();
        String api = "http://127.0.0.1:" + apiPort + "/";
        Path verifierLog = tmp.resolve("verifier.log");
        Path presenterLog = tmp.resolve("presenter.log");
        start("VerifierServer", verifierLog, Map.of("PORT", Integer.toString(apiPort), "HOST", "127.0.0.1",
                "KEY_DIR", verifierKeys.dir().toString(), "KEYROTOR_HANDSHAKE_DIR", verifierHandshake.toString()));
        up(api, verifierLog);
        Process presenter = start("PresenterClient", presenterLog, Map.of("PORT", Integer.toString(countsPort),
                "HOST", "127.0.0.1", "TARGET_URL", api, "INTERVAL_MS", "10",
                "KEY_DIR", presenterKeys.dir().toString(), "KEYROTOR_HANDSHAKE_DIR", presenterHandshake.toString()));
        String counts = "http://127.0.0.1:" + countsPort + "/counts";
        up(counts, presenterLog);
        confirmed(verifierHandshake.resolve("orders.verifier-revision"), "1");
        confirmed(presenterHandshake.resolve("orders.presenter-revision"), "1");

        // keyrotor's order (I1): verifiers accept the new key, presenters switch, verifiers drop the old.
        verifierKeys.publish(Kubelet.verifier("orders", 2, 1, 2));
        confirmed(verifierHandshake.resolve("orders.verifier-revision"), "2");
        presenterKeys.publish(Kubelet.presenter("orders", 2, 2));
        confirmed(presenterHandshake.resolve("orders.presenter-revision"), "2");
        verifierKeys.publish(Kubelet.verifier("orders", 3, 2));
        confirmed(verifierHandshake.resolve("orders.verifier-revision"), "3");
        Thread.sleep(200);

        String body = get(counts, null).body();
        Matcher m = Pattern.compile("\\{\"ok\": (\\d+), \"rejected\": (\\d+), \"errors\": (\\d+)}").matcher(body.trim());
        assertTrue(m.matches(), body);
        assertTrue(Long.parseLong(m.group(1)) > 10, "requests went through: " + body);
        assertEquals("0", m.group(2), "rejected requests: " + body);
        assertEquals("0", m.group(3), "failed requests: " + body);

        HttpResponse<String> old = get(api, "Bearer " + key(1));
        assertEquals(401, old.statusCode());
        assertEquals("retired", old.headers().firstValue("X-Keyrotor-Refusal").orElse(""));
        assertEquals(200, get(api, "Bearer " + key(2)).statusCode());

        presenter.destroy(); // SIGTERM: the counts are printed
        assertTrue(presenter.waitFor(10, TimeUnit.SECONDS));
        String printed = Files.readString(presenterLog);
        assertTrue(printed.contains("\"rejected\": 0"), printed);
        assertTrue(!printed.contains("fake-test-key") && !Files.readString(verifierLog).contains("fake-test-key"),
                "the apps never print a key");
    }
}
