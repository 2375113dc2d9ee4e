package dev.keyrotor.consumer.servlet;

import dev.keyrotor.consumer.Check;
import dev.keyrotor.consumer.KeyHeader;
import dev.keyrotor.consumer.Options;
import dev.keyrotor.consumer.Verifier;
import dev.keyrotor.consumer.VolumeException;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Enumeration;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * A servlet filter that lets a request through only when its key is accepted now.
 *
 * <p>The key is read from {@code Authorization: Bearer <key>} by default (any
 * {@link KeyHeader}). An accepted request goes on with the version in the request
 * attribute {@value #VERSION_ATTRIBUTE} ({@link #version(ServletRequest)}). Anything else is
 * answered {@code 401} with a {@value #REFUSAL_HEADER} header saying why: {@code retired} (a
 * version this process accepted once: the client missed a rotation), {@code unknown},
 * {@code missing} (no key header) or {@code malformed} (a repeated header, another scheme).
 * Nothing of a presented key is ever logged or echoed.
 *
 * <p>Build it with a {@link Verifier} the application opened, or declare it in
 * {@code web.xml} with init parameters {@code keyDir} (required), {@code header} and
 * {@code scheme} (default {@code Authorization} and {@code Bearer}; an empty scheme reads a
 * header holding the key alone), {@code handshakeDir} (default: {@code KEYROTOR_HANDSHAKE_DIR})
 * and {@code trafficMode} ({@code true} or {@code false}).
 */
public final class KeyrotorFilter implements Filter {
    /** The request attribute holding the accepted version (a {@link Long}, unsigned). */
    public static final String VERSION_ATTRIBUTE = "dev.keyrotor.consumer.version";
    /** The response header of a refusal: {@code retired}, {@code unknown}, {@code missing}, {@code malformed}. */
    public static final String REFUSAL_HEADER = "X-Keyrotor-Refusal";

    private Verifier verifier;
    private KeyHeader header;
    private boolean owned;

    /** For {@code web.xml}: configured by {@link #init(FilterConfig)}. */
    public KeyrotorFilter() {}

    /** Checks {@code Authorization: Bearer <key>} against {@code verifier}. */
    public KeyrotorFilter(Verifier verifier) {
        this(verifier, KeyHeader.BEARER);
    }

    /** Checks the key in {@code header} against {@code verifier}. */
    public KeyrotorFilter(Verifier verifier, KeyHeader header) {
        this.verifier = Objects.requireNonNull(verifier, "verifier");
        this.header = Objects.requireNonNull(header, "header");
    }

    @Override
    public void init(FilterConfig config) throws ServletException {
        if (verifier != null) {
            return;
        }
        String dir = config.getInitParameter("keyDir");
        if (dir == null || dir.isEmpty()) {
            throw new ServletException("keyrotor: the filter needs the init parameter keyDir");
        }
        header = new KeyHeader(param(config, "header", KeyHeader.BEARER.name()),
                param(config, "scheme", KeyHeader.BEARER.scheme()));
        Options options = new Options().keyHeader(header)
                .trafficMode(Boolean.parseBoolean(param(config, "trafficMode", "false")));
        String handshake = config.getInitParameter("handshakeDir");
        if (handshake != null && !handshake.isEmpty()) {
            options.handshakeDir(Path.of(handshake));
        }
        try {
            verifier = Verifier.open(Path.of(dir), options);
            owned = true;
        } catch (VolumeException e) {
            throw new ServletException("keyrotor: cannot load the verifier Secret: " + e.getMessage());
        }
    }

    private static String param(FilterConfig config, String name, String otherwise) {
        String value = config.getInitParameter(name);
        return value == null ? otherwise : value;
    }

    @Override
    public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
            throws IOException, ServletException {
        if (!(request instanceof HttpServletRequest http) || !(response instanceof HttpServletResponse answer)) {
            throw new ServletException("keyrotor: the filter serves HTTP requests only");
        }
        if (verifier == null) {
            throw new ServletException("keyrotor: the filter was not initialized");
        }
        Optional<String> presented;
        Enumeration<String> values = http.getHeaders(header.name());
        String value = values != null && values.hasMoreElements() ? values.nextElement() : null;
        if (value == null) {
            refuse(answer, "missing");
            return;
        }
        if (values.hasMoreElements() || (presented = header.presented(value)).isEmpty()) {
            refuse(answer, "malformed");
            return;
        }
        Check check = verifier.check(presented.get());
        if (check instanceof Check.Accepted accepted) {
            request.setAttribute(VERSION_ATTRIBUTE, accepted.version());
            chain.doFilter(request, response);
        } else if (check instanceof Check.Retired) {
            refuse(answer, "retired");
        } else {
            refuse(answer, "unknown");
        }
    }

    private void refuse(HttpServletResponse answer, String reason) throws IOException {
        answer.setStatus(HttpServletResponse.SC_UNAUTHORIZED);
        answer.setHeader(REFUSAL_HEADER, reason);
        header.challenge().ifPresent(scheme -> answer.setHeader("WWW-Authenticate", scheme));
        answer.setContentType("text/plain;charset=utf-8");
        answer.getWriter().write(reason + " key\n");
    }

    /** The version an accepted request presented, as this filter recorded it. */
    public static OptionalLong version(ServletRequest request) {
        return request.getAttribute(VERSION_ATTRIBUTE) instanceof Long v ? OptionalLong.of(v) : OptionalLong.empty();
    }

    /** Closes the verifier when this filter opened it. */
    @Override
    public void destroy() {
        if (owned && verifier != null) {
            verifier.close();
        }
    }
}
