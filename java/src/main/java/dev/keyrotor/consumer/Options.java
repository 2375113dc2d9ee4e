package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.Wire;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * How a {@link Verifier} or {@link Presenter} follows its directory and confirms what it
 * loaded. The defaults suit a pod: poll {@code ..data} every second, confirm through the
 * handshake directory named by {@code KEYROTOR_HANDSHAKE_DIR} when it is set, no Traffic
 * mode, {@code Authorization: Bearer <key>}. Read once, when a verifier or presenter opens.
 */
public final class Options {
    private Path handshakeDir;
    private boolean handshakeFromEnvironment = true;
    private Duration pollInterval = Duration.ofSeconds(1);
    private boolean trafficMode;
    private Duration lastSeenInterval = Duration.ofSeconds(5);
    private KeyHeader keyHeader = KeyHeader.BEARER;

    /** The handshake directory shared with the {@code keyrotor reporter --handshake} sidecar. */
    public Options handshakeDir(Path dir) {
        this.handshakeDir = Objects.requireNonNull(dir, "dir");
        this.handshakeFromEnvironment = false;
        return this;
    }

    /** No handshake, even when {@code KEYROTOR_HANDSHAKE_DIR} is set. */
    public Options noHandshake() {
        this.handshakeDir = null;
        this.handshakeFromEnvironment = false;
        return this;
    }

    /**
     * How often {@code readlink(..data)} is polled on a daemon thread (never keeps the JVM
     * alive). {@link Duration#ZERO}: no background polling; call {@code refresh()} yourself.
     */
    public Options pollInterval(Duration interval) {
        if (interval.isNegative()) {
            throw new IllegalArgumentException("a poll interval cannot be negative");
        }
        this.pollInterval = interval;
        return this;
    }

    /**
     * Traffic mode (verifiers): record when each version was last presented and write
     * {@code <rotation>.last-seen} to the handshake directory.
     */
    public Options trafficMode(boolean on) {
        this.trafficMode = on;
        return this;
    }

    /** At most how often {@code <rotation>.last-seen} is written (default 5 s). */
    public Options lastSeenInterval(Duration interval) {
        if (interval.isNegative() || interval.isZero()) {
            throw new IllegalArgumentException("a last-seen interval must be positive");
        }
        this.lastSeenInterval = interval;
        return this;
    }

    /** Where requests carry the key (the servlet filter and {@link Presenter#authorize}). */
    public Options keyHeader(KeyHeader header) {
        this.keyHeader = Objects.requireNonNull(header, "header");
        return this;
    }

    Optional<Path> handshakeDir(Map<String, String> environment) {
        if (!handshakeFromEnvironment) {
            return Optional.ofNullable(handshakeDir);
        }
        String fromEnv = environment.get(Wire.HANDSHAKE_DIR_ENV);
        return fromEnv == null || fromEnv.isEmpty() ? Optional.empty() : Optional.of(Path.of(fromEnv));
    }

    Duration pollInterval() {
        return pollInterval;
    }

    boolean trafficMode() {
        return trafficMode;
    }

    Duration lastSeenInterval() {
        return lastSeenInterval;
    }

    KeyHeader keyHeader() {
        return keyHeader;
    }
}
