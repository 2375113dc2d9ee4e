package dev.keyrotor.consumer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A key: 16 to 1024 bytes of printable ASCII without spaces. Its {@code toString} is
 * redacted, it has no {@code equals} by content, and it is not {@code Serializable}: the
 * only way out is {@link #reveal()}, to call where the key goes on the wire.
 *
 * <p>Java cannot promise to wipe a key (the garbage collector copies objects, and every
 * {@code String} made by {@link #reveal()} lives until it is collected); this class keeps
 * one private copy and hands out no reference to it.
 */
public final class SecretKey {
    /** The shortest key keyrotor issues or adopts. */
    public static final int MIN_LENGTH = 16;
    /** The longest key keyrotor issues or adopts. */
    public static final int MAX_LENGTH = 1024;

    private final byte[] ascii;

    private SecretKey(byte[] ascii) {
        this.ascii = ascii;
    }

    /** A key from its bytes (copied), or null when they are not a key's. */
    static SecretKey adopt(byte[] bytes, int length) {
        if (!isKey(bytes, length)) {
            return null;
        }
        return new SecretKey(Arrays.copyOf(bytes, length));
    }

    /** Whether the first {@code length} bytes can be a key (length and alphabet). */
    static boolean isKey(byte[] bytes, int length) {
        if (length < MIN_LENGTH || length > MAX_LENGTH) {
            return false;
        }
        for (int i = 0; i < length; i++) {
            if (bytes[i] < 0x21 || bytes[i] > 0x7e) {
                return false;
            }
        }
        return true;
    }

    /** The key itself, for a header or a file: never log it. */
    public String reveal() {
        return new String(ascii, StandardCharsets.US_ASCII);
    }

    /** The key's length in bytes. */
    public int length() {
        return ascii.length;
    }

    /** The bytes, for hashing inside the library. */
    byte[] bytes() {
        return ascii;
    }

    @Override
    public String toString() {
        return "SecretKey[redacted]";
    }
}
