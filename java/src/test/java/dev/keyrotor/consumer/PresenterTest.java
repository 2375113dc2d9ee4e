package dev.keyrotor.consumer;

import static dev.keyrotor.consumer.Kubelet.key;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
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
