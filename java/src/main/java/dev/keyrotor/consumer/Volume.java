package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.Wire;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotLinkException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;
import java.util.Optional;

/**
 * Reading a mounted Secret volume consistently (docs/wire.md, "Reading consistently").
 *
 * <p>kubelet writes a new timestamped directory, then renames a new {@code ..data} symlink
 * over the old one. Reading every file through one resolved {@code ..data} target gives a
 * consistent set even while kubelet swaps, and the target's name is a cheap change token
 * (one {@code readlink}). A plain directory (local development) is read as it is.
 */
final class Volume {
    /** Largest text file read (metadata, digests); a larger one is malformed, never read whole. */
    static final int MAX_TEXT_FILE = 4096;
    /** Largest key file read: a 1024-byte key and one trailing newline. */
    static final int MAX_KEY_FILE = 1025;
    /** Reads repeated while kubelet swaps in between, before failing as unstable. */
    static final int READ_ATTEMPTS = 5;

    private Volume() {}

    /** Reads the files of one generation; may fail with any class. */
    @FunctionalInterface
    interface Reader<T> {
        T read(FileSet files) throws VolumeException;
    }

    /** A value read from one generation, and that generation (none for a plain directory). */
    record Read<T>(T value, Optional<String> generation) {}

    /** Where {@code dir/..data} points, or empty when it does not exist or is not a symlink. */
    static Optional<String> generation(Path dir) throws VolumeException {
        Path link = dir.resolve(Wire.DATA_LINK);
        try {
            return Optional.of(Files.readSymbolicLink(link).toString());
        } catch (NoSuchFileException | NotLinkException e) {
            return Optional.empty();
        } catch (IOException e) {
            throw new VolumeException(link, e);
        }
    }

    /** Reads {@code dir} with {@code reader}, again while kubelet swapped it in between. */
    static <T> Read<T> readConsistent(Path dir, Reader<T> reader) throws VolumeException {
        for (int attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
            Optional<String> before = generation(dir);
            FileSet files = new FileSet(before.map(dir::resolve).orElse(dir));
            T value = null;
            VolumeException failure = null;
            try {
                value = reader.read(files);
            } catch (VolumeException e) {
                failure = e;
            }
            if (Objects.equals(generation(dir), before)) {
                if (failure != null) {
                    throw failure;
                }
                return new Read<>(value, before);
            }
            // Swapped under us (kubelet deletes the old directory afterwards, so an error
            // above may be only the swap): read the new one.
        }
        throw new VolumeException(VolumeException.Kind.UNSTABLE, dir,
                "kept changing while it was read (" + READ_ATTEMPTS + " attempts)");
    }

    /** The files of one generation, read through its resolved directory. */
    static final class FileSet {
        private final Path root;

        FileSet(Path root) {
            this.root = root;
        }

        Path path(String name) {
            return root.resolve(name);
        }

        /**
         * A file's bytes, or null when it does not exist. A file longer than {@code max}
         * bytes is malformed: at most {@code max + 1} bytes are read.
         */
        byte[] read(String name, int max) throws VolumeException {
            Path file = path(name);
            try (InputStream in = Files.newInputStream(file)) {
                byte[] bytes = in.readNBytes(max + 1);
                if (bytes.length > max) {
                    Arrays.fill(bytes, (byte) 0);
                    throw malformed(name, "is larger than " + max + " bytes");
                }
                return bytes;
            } catch (NoSuchFileException e) {
                return null;
            } catch (VolumeException e) {
                throw e;
            } catch (IOException e) {
                throw new VolumeException(file, e);
            }
        }

        /** A text file without the ASCII whitespace around it, or null when it does not exist. */
        String text(String name) throws VolumeException {
            byte[] bytes = read(name, MAX_TEXT_FILE);
            if (bytes == null) {
                return null;
            }
            try {
                String text = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(bytes))
                        .toString();
                return trimAscii(text);
            } catch (CharacterCodingException e) {
                throw malformed(name, "is not UTF-8");
            }
        }

        /** A text file that must exist. */
        String required(String name) throws VolumeException {
            String text = text(name);
            if (text == null) {
                throw missing(name);
            }
            return text;
        }

        VolumeException missing(String name) {
            return new VolumeException(VolumeException.Kind.MISSING, path(name), "is missing");
        }

        /** An error about {@code name}; the reason must never quote the content. */
        VolumeException malformed(String name, String reason) {
            return new VolumeException(VolumeException.Kind.MALFORMED, path(name), reason);
        }
    }

    /** Without SP, HTAB, LF, FF and CR around it (not Unicode spaces). */
    static String trimAscii(String text) {
        int from = 0;
        int to = text.length();
        while (from < to && isAsciiSpace(text.charAt(from))) {
            from++;
        }
        while (to > from && isAsciiSpace(text.charAt(to - 1))) {
            to--;
        }
        return text.substring(from, to);
    }

    private static boolean isAsciiSpace(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
    }
}
