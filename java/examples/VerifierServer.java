import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.keyrotor.consumer.Check;
import dev.keyrotor.consumer.KeyHeader;
import dev.keyrotor.consumer.Options;
import dev.keyrotor.consumer.Verifier;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * A verifier API on the JDK's HTTP server: {@code GET /} answers 200 when the request's
 * {@code Authorization: Bearer <key>} is accepted now, 401 otherwise ({@code X-Keyrotor-Refusal:
 * retired} for a version this process accepted once). The accepted versions live in memory
 * and follow the mounted Secret; each load is confirmed through {@code KEYROTOR_HANDSHAKE_DIR}.
 *
 * <p>Environment: {@code PORT} (8080), {@code KEY_DIR} (the mounted verifier Secret),
 * {@code HOST} (all interfaces), {@code TRAFFIC_MODE} ({@code true}: write last-seen),
 * {@code KEYROTOR_HANDSHAKE_DIR}. Run: {@code java -cp keyrotor-consumer.jar VerifierServer.java}.
 */
public final class VerifierServer {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(env("PORT", "8080"));
        Path dir = Path.of(env("KEY_DIR", "/var/run/keyrotor/keys"));
        Verifier verifier = Verifier.open(dir,
                new Options().trafficMode(Boolean.parseBoolean(env("TRAFFIC_MODE", "false"))));
        String host = System.getenv("HOST");
        InetSocketAddress address = host == null || host.isEmpty()
                ? new InetSocketAddress(port) : new InetSocketAddress(host, port);
        HttpServer server = HttpServer.create(address, 128);
        server.createContext("/", exchange -> answer(exchange, verifier));
        ExecutorService workers = Executors.newFixedThreadPool(8);
        server.setExecutor(workers);
        server.start();
        System.out.println("verifier: listening on " + server.getAddress() + ", " + verifier.snapshot());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop(0);
            workers.shutdown();
            verifier.close();
            System.out.println("verifier: stopped at " + verifier.snapshot());
        }));
    }

    private static void answer(HttpExchange exchange, Verifier verifier) throws IOException {
        List<String> values = exchange.getRequestHeaders().get(KeyHeader.BEARER.name());
        Check check = Check.UNKNOWN;
        if (values != null && values.size() == 1) {
            check = KeyHeader.BEARER.presented(values.get(0)).map(verifier::check).orElse(Check.UNKNOWN);
        }
        int status = check.isAccepted() ? 200 : 401;
        if (check instanceof Check.Retired) {
            exchange.getResponseHeaders().set("X-Keyrotor-Refusal", "retired");
        }
        byte[] body = (status == 200 ? "ok\n" : "unauthorized\n").getBytes(StandardCharsets.UTF_8);
        exchange.sendResponseHeaders(status, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    private static String env(String name, String otherwise) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? otherwise : value;
    }
}
