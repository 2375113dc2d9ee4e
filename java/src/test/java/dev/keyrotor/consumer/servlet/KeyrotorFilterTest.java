package dev.keyrotor.consumer.servlet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.keyrotor.consumer.KeyHeader;
import dev.keyrotor.consumer.Options;
import dev.keyrotor.consumer.Verifier;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.Proxy;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collections;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.security.MessageDigest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The servlet filter: accepted requests go on with their version; others get a 401 saying why. */
class KeyrotorFilterTest {
    @TempDir
    Path tmp;
    Path keys;

    /** A request with the given headers (name to values) and attributes, as a container hands it. */
    static final class Request {
        final Map<String, List<String>> headers = new HashMap<>();
        final Map<String, Object> attributes = new HashMap<>();

        Request header(String name, String... values) {
            headers.put(name.toLowerCase(), List.of(values));
            return this;
        }

        HttpServletRequest proxy() {
            return (HttpServletRequest) Proxy.newProxyInstance(getClass().getClassLoader(),
                    new Class<?>[] {HttpServletRequest.class}, (p, m, args) -> switch (m.getName()) {
                        case "getHeaders" -> Collections.enumeration(
                                headers.getOrDefault(((String) args[0]).toLowerCase(), List.of()));
                        case "getHeader" -> headers.getOrDefault(((String) args[0]).toLowerCase(), List.of())
                                .stream().findFirst().orElse(null);
                        case "setAttribute" -> attributes.put((String) args[0], args[1]);
                        case "getAttribute" -> attributes.get((String) args[0]);
                        default -> throw new UnsupportedOperationException(m.getName());
                    });
        }
    }

    /** What a filter answered. */
    static final class Response {
        int status = 200;
        final Map<String, String> headers = new HashMap<>();
        final StringWriter body = new StringWriter();

        HttpServletResponse proxy() {
            return (HttpServletResponse) Proxy.newProxyInstance(getClass().getClassLoader(),
                    new Class<?>[] {HttpServletResponse.class}, (p, m, args) -> {
                        switch (m.getName()) {
                            case "setStatus" -> status = (Integer) args[0];
                            case "setHeader" -> headers.put(((String) args[0]).toLowerCase(), (String) args[1]);
                            case "setContentType" -> headers.put("content-type", (String) args[0]);
                            case "getWriter" -> {
                                return new PrintWriter(body, true);
                            }
                            default -> throw new UnsupportedOperationException(m.getName());
                        }
                        return null;
                    });
        }
    }

    private static String key(long v) {
        return "fake-test-key-v" + v + "-not-a-secret";
    }

    private static String sha256(String key) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.US_ASCII)));
    }

    private void write(long revision, long... versions) throws Exception {
        Files.createDirectories(keys);
        Files.writeString(keys.resolve("rotation"), "orders");
        Files.writeString(keys.resolve("role"), "verifier");
        Files.writeString(keys.resolve("revision"), Long.toString(revision));
        StringBuilder accepted = new StringBuilder();
        for (long v : versions) {
            accepted.append(accepted.length() == 0 ? "" : ",").append(v);
            Files.writeString(keys.resolve("v" + v + ".sha256"), sha256(key(v)));
        }
        Files.writeString(keys.resolve("accepted"), accepted.toString());
    }

    @BeforeEach
    void keys() throws Exception {
        keys = tmp.resolve("keys");
        write(1, 3, 4);
    }

    private Verifier verifier() throws Exception {
        return Verifier.open(keys, new Options().noHandshake().pollInterval(Duration.ZERO));
    }

    /** Runs the filter; returns the response and whether the chain ran (with the version it saw). */
    private static Object[] run(KeyrotorFilter filter, Request request) throws Exception {
        Response response = new Response();
        OptionalLong[] passed = {null};
        FilterChain chain = (req, res) -> passed[0] = KeyrotorFilter.version(req);
        filter.doFilter(request.proxy(), response.proxy(), chain);
        return new Object[] {response, passed[0]};
    }

    @Test
    void an_accepted_key_goes_on_with_its_version() throws Exception {
        try (Verifier v = verifier()) {
            Object[] out = run(new KeyrotorFilter(v), new Request().header("Authorization", "Bearer " + key(4)));
            assertEquals(OptionalLong.of(4), out[1]);
            assertEquals(200, ((Response) out[0]).status);
            Object[] lower = run(new KeyrotorFilter(v), new Request().header("authorization", "bearer  " + key(3) + " "));
            assertEquals(OptionalLong.of(3), lower[1], "the scheme is case-insensitive, spaces around the key are removed");
        }
    }

    @Test
    void a_retired_key_is_refused_with_its_own_reason() throws Exception {
        try (Verifier v = verifier()) {
            write(2, 4, 5);
            v.refresh();
            Object[] out = run(new KeyrotorFilter(v), new Request().header("Authorization", "Bearer " + key(3)));
            Response response = (Response) out[0];
            assertNull(out[1], "the chain does not run");
            assertEquals(401, response.status);
            assertEquals("retired", response.headers.get("x-keyrotor-refusal"));
            assertEquals("Bearer", response.headers.get("www-authenticate"));
        }
    }

    @Test
    void unknown_missing_and_malformed_keys_are_refused_and_never_echoed() throws Exception {
        Map<Request, String> cases = new HashMap<>();
        cases.put(new Request().header("Authorization", "Bearer " + key(9)), "unknown");
        cases.put(new Request(), "missing");
        cases.put(new Request().header("Authorization", "Bearer " + key(3), "Bearer " + key(3)), "malformed");
        cases.put(new Request().header("Authorization", "Basic " + key(3)), "malformed");
        cases.put(new Request().header("Authorization", "Bearer" + key(3)), "malformed");
        cases.put(new Request().header("Authorization", "Bearer " + key(3) + "\u0000"), "unknown");
        cases.put(new Request().header("Authorization", "Bearer " + "k".repeat(100_000)), "unknown");
        try (Verifier v = verifier()) {
            for (Map.Entry<Request, String> c : cases.entrySet()) {
                Object[] out = run(new KeyrotorFilter(v), c.getKey());
                Response response = (Response) out[0];
                assertNull(out[1]);
                assertEquals(401, response.status);
                assertEquals(c.getValue(), response.headers.get("x-keyrotor-refusal"));
                assertFalse(response.body.toString().contains("fake-test-key"), response.body.toString());
                assertFalse(response.headers.toString().contains("fake-test-key"));
            }
        }
    }

    @Test
    void a_header_that_holds_the_key_alone_can_be_configured() throws Exception {
        try (Verifier v = verifier()) {
            KeyrotorFilter filter = new KeyrotorFilter(v, KeyHeader.alone("X-Api-Key"));
            assertEquals(OptionalLong.of(3), run(filter, new Request().header("X-Api-Key", key(3)))[1]);
            Response refused = (Response) run(filter, new Request().header("Authorization", "Bearer " + key(3)))[0];
            assertEquals("missing", refused.headers.get("x-keyrotor-refusal"));
            assertNull(refused.headers.get("www-authenticate"));
        }
    }

    @Test
    void web_xml_configures_the_filter_with_init_parameters() throws Exception {
        Map<String, String> params = Map.of("keyDir", keys.toString(), "header", "X-Api-Key", "scheme", "",
                "handshakeDir", tmp.resolve("handshake").toString());
        Files.createDirectories(tmp.resolve("handshake"));
        FilterConfig config = (FilterConfig) Proxy.newProxyInstance(getClass().getClassLoader(),
                new Class<?>[] {FilterConfig.class}, (p, m, args) -> m.getName().equals("getInitParameter")
                        ? params.get((String) args[0]) : null);
        KeyrotorFilter filter = new KeyrotorFilter();
        filter.init(config);
        try {
            assertEquals(OptionalLong.of(4), run(filter, new Request().header("x-api-key", key(4)))[1]);
            assertEquals("1", Files.readString(tmp.resolve("handshake").resolve("orders.verifier-revision")));
        } finally {
            filter.destroy();
        }
        KeyrotorFilter unconfigured = new KeyrotorFilter();
        FilterConfig empty = (FilterConfig) Proxy.newProxyInstance(getClass().getClassLoader(),
                new Class<?>[] {FilterConfig.class}, (p, m, args) -> null);
        ServletException e = assertThrows(ServletException.class, () -> unconfigured.init(empty));
        assertTrue(e.getMessage().contains("keyDir"));
    }
}
