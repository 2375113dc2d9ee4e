package dev.keyrotor.consumer.wire;

/**
 * IP address literals as the traffic value carries them: {@code IPv4address} (no leading
 * zeros) or {@code IPv6address} (RFC 3986, 3.2.2: no zone, no brackets), written in their
 * canonical form (RFC 5952 for IPv6, an IPv4-mapped address as {@code ::ffff:a.b.c.d}).
 * Parsed here by hand: {@link java.net.InetAddress} may ask DNS, and turns an IPv4-mapped
 * address into an IPv4 one.
 */
final class IpAddresses {
    private IpAddresses() {}

    /** The canonical form of the address {@code text}, or a syntax refusal. */
    static String canonical(String text) throws Refusal {
        int[] v4 = ipv4(text);
        if (v4 != null) {
            return v4[0] + "." + v4[1] + "." + v4[2] + "." + v4[3];
        }
        int[] v6 = ipv6(text);
        if (v6 == null) {
            throw Refusal.syntax("client is not an IP address");
        }
        return formatIpv6(v6);
    }

    /** Four decimal octets, each {@code 0} or without leading zeros, at most 255. */
    private static int[] ipv4(String text) {
        String[] parts = text.split("\\.", -1);
        if (parts.length != 4) {
            return null;
        }
        int[] out = new int[4];
        for (int i = 0; i < 4; i++) {
            String p = parts[i];
            if (p.isEmpty() || p.length() > 3 || (p.length() > 1 && p.charAt(0) == '0')) {
                return null;
            }
            int n = 0;
            for (int j = 0; j < p.length(); j++) {
                char c = p.charAt(j);
                if (c < '0' || c > '9') {
                    return null;
                }
                n = n * 10 + (c - '0');
            }
            if (n > 255) {
                return null;
            }
            out[i] = n;
        }
        return out;
    }

    /** Eight 16-bit groups, or null. {@code ::} stands for at least one zero group. */
    private static int[] ipv6(String text) {
        int gap = text.indexOf("::");
        int[] groups = new int[8];
        if (gap < 0) {
            int n = groups(text, groups, 0, 8, true);
            return n == 8 ? groups : null;
        }
        String head = text.substring(0, gap);
        String tail = text.substring(gap + 2);
        int[] headGroups = new int[7];
        int[] tailGroups = new int[7];
        int h = head.isEmpty() ? 0 : groups(head, headGroups, 0, 7, false);
        int t = tail.isEmpty() ? 0 : groups(tail, tailGroups, 0, 7, true);
        if (h < 0 || t < 0 || h + t > 7) {
            return null;
        }
        System.arraycopy(headGroups, 0, groups, 0, h);
        System.arraycopy(tailGroups, 0, groups, 8 - t, t);
        return groups;
    }

    /**
     * Parses {@code text} as colon-separated groups into {@code out}; an IPv4 address may end
     * it when {@code ipv4Last} (two groups). Returns how many groups, or -1.
     */
    private static int groups(String text, int[] out, int from, int limit, boolean ipv4Last) {
        String[] parts = text.split(":", -1);
        int n = from;
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i];
            if (ipv4Last && i == parts.length - 1 && p.indexOf('.') >= 0) {
                int[] v4 = ipv4(p);
                if (v4 == null || n + 2 > limit) {
                    return -1;
                }
                out[n++] = v4[0] << 8 | v4[1];
                out[n++] = v4[2] << 8 | v4[3];
                continue;
            }
            if (p.isEmpty() || p.length() > 4 || n >= limit) {
                return -1;
            }
            int g = 0;
            for (int j = 0; j < p.length(); j++) {
                int d = hexDigit(p.charAt(j));
                if (d < 0) {
                    return -1;
                }
                g = g << 4 | d;
            }
            out[n++] = g;
        }
        return n;
    }

    /** An ASCII hex digit's value (either case), or -1. */
    static int hexDigit(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    /** RFC 5952: lower-case hex, no leading zeros, the first longest run (of 2+) of zeros as {@code ::}. */
    private static String formatIpv6(int[] g) {
        if (g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 0 && g[4] == 0 && g[5] == 0xffff) {
            return "::ffff:" + (g[6] >> 8) + "." + (g[6] & 0xff) + "." + (g[7] >> 8) + "." + (g[7] & 0xff);
        }
        int bestStart = 0;
        int bestLen = 0;
        int start = 0;
        int len = 0;
        for (int i = 0; i < 8; i++) {
            if (g[i] == 0) {
                if (len == 0) {
                    start = i;
                }
                len++;
                if (len > bestLen) {
                    bestStart = start;
                    bestLen = len;
                }
            } else {
                len = 0;
            }
        }
        if (bestLen < 2) {
            return join(g, 0, 8);
        }
        return join(g, 0, bestStart) + "::" + join(g, bestStart + bestLen, 8);
    }

    private static String join(int[] g, int from, int to) {
        StringBuilder out = new StringBuilder();
        for (int i = from; i < to; i++) {
            if (i > from) {
                out.append(':');
            }
            out.append(Integer.toHexString(g[i]));
        }
        return out.toString();
    }
}
