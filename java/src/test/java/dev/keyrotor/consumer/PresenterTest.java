package dev.keyrotor.consumer;

import static dev.keyrotor.consumer.Kubelet.key;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The presenter side: the current key, reloaded on change, set on outgoing requests. */
class PresenterTest {
    @TempDir
    Path tmp;

    @Test
    void the_current_key_follows_the_volume_and_goes_on_outgoing_requests() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.presenter("orders", 1, 3));
        try (Presenter p = Presenter.open(kubelet.dir(), new Options().noHandshake().pollInterval(Duration.ZERO))) {
            assertEquals(3, p.version());
            assertEquals("Bearer " + key(3), p.headerValue());
            kubelet.publish(Kubelet.presenter("orders", 2, 4));
            p.refresh();
            HttpRequest request = p.authorize(HttpRequest.newBuilder(URI.create("http://127.0.0.1/"))).build();
            assertEquals(Optional.of("Bearer " + key(4)), request.headers().firstValue("Authorization"));
            assertEquals(List.of("Bearer " + key(4)), request.headers().allValues("authorization"));
        }
    }

    @Test
    void a_header_that_holds_the_key_alone_is_set_as_configured() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.presenter("orders", 1, 3));
        Options options = new Options().noHandshake().pollInterval(Duration.ZERO).keyHeader(KeyHeader.alone("X-Api-Key"));
        try (Presenter p = Presenter.open(kubelet.dir(), options)) {
            HttpRequest request = p.authorize(HttpRequest.newBuilder(URI.create("http://127.0.0.1/"))).build();
            assertEquals(Optional.of(key(3)), request.headers().firstValue("x-api-key"));
        }
    }

    @Test
    void the_key_comes_with_the_user_name_of_its_version_across_swaps() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(withUsername(Kubelet.presenter("orders", 1, 3), "app_blue"));
        try (Presenter p = Presenter.open(kubelet.dir(), new Options().noHandshake().pollInterval(Duration.ZERO))) {
            assertEquals(new Presenter.Current(3, p.key(), Optional.of("app_blue")), p.current());
            kubelet.publish(withUsername(Kubelet.presenter("orders", 2, 4), "app_green\n"));
            assertTrue(p.refresh());
            Presenter.Current current = p.current();
            assertEquals(4, current.version());
            assertEquals(key(4), current.key().reveal());
            assertEquals(Optional.of("app_green"), current.username());
            kubelet.publish(Kubelet.presenter("orders", 3, 5));
            assertTrue(p.refresh());
            assertEquals(Optional.empty(), p.current().username());
            assertEquals(Optional.empty(), p.username());
        }
    }

    @Test
    void a_malformed_user_name_keeps_the_last_good_key_and_user_name() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(withUsername(Kubelet.presenter("orders", 1, 3), "app_blue"));
        try (Presenter p = Presenter.open(kubelet.dir(), new Options().noHandshake().pollInterval(Duration.ZERO))) {
            kubelet.publish(withUsername(Kubelet.presenter("orders", 2, 4), "app green"));
            VolumeException e = assertThrows(VolumeException.class, p::refresh);
            assertEquals("malformed", e.errorClass());
            assertTrue(e.getMessage().contains("/username: "), e.getMessage());
            assertFalse(e.getMessage().contains("app green"), e.getMessage());
            Presenter.Current current = p.current();
            assertEquals(3, current.version());
            assertEquals(key(3), current.key().reveal());
            assertEquals(Optional.of("app_blue"), current.username());
        }
    }

    private static Map<String, String> withUsername(Map<String, String> files, String username) {
        files.put("username", username);
        return files;
    }

    @Test
    void a_verifier_directory_is_refused() throws Exception {
        Kubelet kubelet = new Kubelet(tmp.resolve("keys"));
        kubelet.publish(Kubelet.verifier("orders", 1, 3));
        VolumeException e = assertThrows(VolumeException.class,
                () -> Presenter.open(kubelet.dir(), new Options().noHandshake()));
        assertEquals("malformed", e.errorClass());
    }

    @Test
    void a_key_header_reads_only_its_scheme() {
        KeyHeader bearer = KeyHeader.BEARER;
        assertEquals(Optional.of("abc"), bearer.presented("Bearer abc"));
        assertEquals(Optional.of("abc"), bearer.presented("BEARER \tabc "));
        assertEquals(Optional.empty(), bearer.presented("Bearerabc"));
        assertEquals(Optional.empty(), bearer.presented("Basic abc"));
        assertEquals(Optional.empty(), bearer.presented("Bearer"));
        assertEquals(Optional.of("x"), KeyHeader.alone("X-Api-Key").presented(" x "));
    }
}
