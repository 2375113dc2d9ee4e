package dev.keyrotor.consumer;

import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/** Everything the library logs while it is open, at every level, as text. */
final class LogCapture extends Handler implements AutoCloseable {
    private final Logger logger = Logger.getLogger("dev.keyrotor.consumer");
    private final Level before = logger.getLevel();
    private final List<String> lines = new ArrayList<>();

    LogCapture() {
        setLevel(Level.ALL);
        logger.setLevel(Level.ALL);
        logger.addHandler(this);
    }

    @Override
    public synchronized void publish(LogRecord record) {
        StringBuilder line = new StringBuilder(record.getLevel() + " " + record.getMessage());
        if (record.getParameters() != null) {
            for (Object p : record.getParameters()) {
                line.append(' ').append(p);
            }
        }
        if (record.getThrown() != null) {
            line.append(' ').append(record.getThrown());
        }
        lines.add(line.toString());
    }

    synchronized String text() {
        return String.join("\n", lines);
    }

    synchronized List<String> lines() {
        return List.copyOf(lines);
    }

    @Override
    public void flush() {}

    @Override
    public void close() {
        logger.removeHandler(this);
        logger.setLevel(before);
    }
}
