import com.sun.net.httpserver.HttpServer;
import dev.keyrotor.consumer.Options;
import dev.keyrotor.consumer.Presenter;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A client that calls {@code TARGET_URL} every {@code INTERVAL_MS} (25) with the current key,
 * held in memory by the library and reloaded when the mounted Secret changes; each load is
 * confirmed through {@code KEYROTOR_HANDSHAKE_DIR}. It counts 2xx answers as ok and other
 * answers as rejected (transport errors apart), serves them at {@code GET /counts} on
 * {@code PORT} (8081) as {@code {"ok": n, "rejected": m, "errors": e}}, and prints them on SIGTERM.
 *
 * <p>Environment: {@code TARGET_URL}, {@code KEY_DIR}, {@code INTERVAL_MS}, {@code POLL_MS}
 * (milliseconds, default 1000; {@code off}: load the key once), {@code PORT},
 * {@code HOST}, {@code KEYROTOR_HANDSHAKE_DIR}.
 * Run: {@code java -cp keyrotor-consumer.jar PresenterClient.java}.
 */
public final class PresenterClient {
    private static final AtomicLong OK = new AtomicLong();
    private static final AtomicLong REJECTED = new AtomicLong();
    private static final AtomicLong ERRORS = new AtomicLong();

    public static void main(String[] args) throws Exception {
        URI target = URI.create(env("TARGET_URL", "http://127.0.0.1:8080/"));
        long interval = Long.parseLong(env("INTERVAL_MS", "25"));
        // POLL_MS: how often the library looks for a new key; "off" loads it once (a client that caches).
        String poll = env("POLL_MS", "1000");
        Options options = new Options().pollInterval(
                poll.equals("off") ? Duration.ZERO : Duration.ofMillis(Long.parseLong(poll)));
        Presenter presenter = Presenter.open(Path.of(env("KEY_DIR", "/var/run/keyrotor/keys")), options);
        serveCounts(Integer.parseInt(env("PORT", "8081")));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            presenter.close();
            System.out.println("presenter: " + counts());
        }));
        System.out.println("presenter: calling " + target + " every " + interval + " ms, " + presenter.snapshot());
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        while (true) {
            HttpRequest request = presenter.authorize(HttpRequest.newBuilder(target)
                    .timeout(Duration.ofSeconds(5)).GET()).build();
            try {
                int status = client.send(request, HttpResponse.BodyHandlers.discarding()).statusCode();
                (status >= 200 && status < 300 ? OK : REJECTED).incrementAndGet();
            } catch (IOException e) {
                ERRORS.incrementAndGet();
            }
            Thread.sleep(interval);
        }
    }

    private static String counts() {
        return "{\"ok\": " + OK.get() + ", \"rejected\": " + REJECTED.get() + ", \"errors\": " + ERRORS.get() + "}";
    }

    private static void serveCounts(int port) throws IOException {
        String host = System.getenv("HOST");
        InetSocketAddress address = host == null || host.isEmpty()
                ? new InetSocketAddress(port) : new InetSocketAddress(host, port);
        HttpServer server = HttpServer.create(address, 16);
        server.createContext("/counts", exchange -> {
            byte[] body = (counts() + "\n").getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
    }

    private static String env(String name, String otherwise) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? otherwise : value;
    }
}
