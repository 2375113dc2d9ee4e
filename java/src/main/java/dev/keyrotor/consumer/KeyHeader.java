package dev.keyrotor.consumer;

import java.util.Locale;
import java.util.Optional;

/**
 * Where a request carries the key: a header, and an authentication scheme before the key
 * ({@code Authorization: Bearer <key>}, the default) or none ({@code X-Api-Key: <key>}).
 * Shared by the verifier side (reading a presented key) and the presenter side (setting it).
 *
 * @param name the header's name (case-insensitive, as HTTP's)
 * @param scheme the scheme before the key, or empty for a header that holds the key alone
 */
public record KeyHeader(String name, String scheme) {
    /** {@code Authorization: Bearer <key>}: the default, as the {@code keyrotor verifier} gateway's. */
    public static final KeyHeader BEARER = new KeyHeader("Authorization", "Bearer");

    public KeyHeader {
        if (name == null || name.isEmpty() || scheme == null) {
            throw new IllegalArgumentException("a key header needs a name and a scheme (empty for none)");
        }
    }

    /** A header that holds the key alone, e.g. {@code KeyHeader.alone("X-Api-Key")}. */
    public static KeyHeader alone(String name) {
        return new KeyHeader(name, "");
    }

    /** The header value that presents {@code key}: never log it. */
    public String value(SecretKey key) {
        return scheme.isEmpty() ? key.reveal() : scheme + " " + key.reveal();
    }

    /**
     * The key a header value presents, or empty when the value has another scheme. Spaces
     * and tabs around the key are removed; whether it can be a key at all is the verifier's
     * check.
     */
    public Optional<String> presented(String value) {
        String rest = value;
        if (!scheme.isEmpty()) {
            int n = scheme.length();
            boolean schemed = value.length() > n
                    && value.regionMatches(true, 0, scheme, 0, n)
                    && (value.charAt(n) == ' ' || value.charAt(n) == '\t');
            if (!schemed) {
                return Optional.empty();
            }
            rest = value.substring(n);
        }
        int from = 0;
        int to = rest.length();
        while (from < to && (rest.charAt(from) == ' ' || rest.charAt(from) == '\t')) {
            from++;
        }
        while (to > from && (rest.charAt(to - 1) == ' ' || rest.charAt(to - 1) == '\t')) {
            to--;
        }
        return Optional.of(rest.substring(from, to));
    }

    /** The challenge a 401 answer carries, or empty for a header without a scheme. */
    public Optional<String> challenge() {
        return scheme.isEmpty() ? Optional.empty() : Optional.of(scheme);
    }

    @Override
    public String toString() {
        return "KeyHeader[" + name.toLowerCase(Locale.ROOT) + (scheme.isEmpty() ? "" : ": " + scheme + " <key>") + "]";
    }
}
