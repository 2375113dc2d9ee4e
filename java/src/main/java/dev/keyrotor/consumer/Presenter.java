package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.Numbers;
import dev.keyrotor.consumer.wire.Wire;
import java.net.http.HttpRequest;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The presenter side: the current key, always the one kubelet last delivered, held in
 * memory and reloaded when {@code ..data} changes. Read {@link #key()} for every request;
 * do not keep the key elsewhere, or the process sends a key it no longer confirms.
 */
public final class Presenter extends Mounted {
    private volatile Snapshot snapshot;
    private final KeyHeader keyHeader;

    /**
     * The current version, its key and the user name the key belongs to (empty when the
     * version has none), all from one snapshot: a key never comes with another version's
     * user name.
     */
    public record Current(long version, SecretKey key, Optional<String> username) {
        @Override
        public String toString() {
            return "Current[version=" + Numbers.format(version) + ", key=" + key
                    + ", username=" + username.orElse("none") + "]";
        }
    }

    private Presenter(Path dir, Options options) {
        super(dir, Wire.ROLE_PRESENTER, options.handshakeDir(System.getenv()));
        this.keyHeader = options.keyHeader();
    }

    /** Opens a presenter (or combined) directory with the default {@link Options}. */
    public static Presenter open(Path dir) throws VolumeException {
        return open(dir, new Options());
    }

    /**
     * Opens a presenter (or combined) directory: removes this rotation's handshake files,
     * loads the directory (failing when it cannot be read), confirms the load, and follows
     * the directory from then on.
     */
    public static Presenter open(Path dir, Options options) throws VolumeException {
        Presenter presenter = new Presenter(dir, options);
        try {
            presenter.start(options, false);
            return presenter;
        } catch (VolumeException | RuntimeException e) {
            presenter.close();
            throw e;
        }
    }

    @Override
    void publish(Snapshot next) {
        snapshot = next;
    }

    @Override
    public Snapshot snapshot() {
        return snapshot;
    }

    /** The key to send now, with its version and user name (read together, from one snapshot). */
    public Current current() {
        Snapshot s = snapshot;
        return new Current(s.currentVersion().orElseThrow(), s.currentKey().orElseThrow(), s.username());
    }

    /** The key to send now. */
    public SecretKey key() {
        return current().key();
    }

    /** The version of the key to send now. */
    public long version() {
        return current().version();
    }

    /**
     * The user name of the current version; empty when it has none. Not secret: fine to log.
     * To send it with the key, take both from {@link #current()}.
     */
    public Optional<String> username() {
        return snapshot.username();
    }

    /** Where requests carry the key ({@link Options#keyHeader}). */
    public KeyHeader keyHeader() {
        return keyHeader;
    }

    /** The header value that presents the current key ({@code Bearer <key>}): never log it. */
    public String headerValue() {
        return keyHeader.value(key());
    }

    /** Sets the key header on an outgoing request. */
    public HttpRequest.Builder authorize(HttpRequest.Builder request) {
        return request.setHeader(keyHeader.name(), headerValue());
    }

    @Override
    public String toString() {
        return "Presenter[" + dir() + ", " + snapshot + "]";
    }
}
