package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.Numbers;

/** What a presented key is: accepted now, a version retired since this process saw it, or unknown. */
public sealed interface Check permits Check.Accepted, Check.Retired, Check.Unknown {
    /** An accepted version: let the request through. */
    record Accepted(long version) implements Check {
        @Override
        public String toString() {
            return "Accepted[" + Numbers.format(version) + "]";
        }
    }

    /** A version this process accepted once and no longer does: the client missed a rotation. */
    record Retired(long version) implements Check {
        @Override
        public String toString() {
            return "Retired[" + Numbers.format(version) + "]";
        }
    }

    /** Not a key of any version this process knows (also: a value that cannot be a key). */
    record Unknown() implements Check {
        @Override
        public String toString() {
            return "Unknown";
        }
    }

    /** The one {@link Unknown}. */
    Check UNKNOWN = new Unknown();

    /** Whether the key is accepted now. */
    default boolean isAccepted() {
        return this instanceof Accepted;
    }
}
