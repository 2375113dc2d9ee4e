package dev.keyrotor.consumer;

import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The one background thread of the library: a daemon, so it never keeps the JVM alive,
 * started on first use. Polls {@code ..data} and writes last-seen; each task is cheap (one
 * {@code readlink} when nothing changed).
 */
final class Poller {
    private Poller() {}

    private static final class Holder {
        static final ScheduledThreadPoolExecutor EXECUTOR = executor();

        private static ScheduledThreadPoolExecutor executor() {
            ScheduledThreadPoolExecutor executor = new ScheduledThreadPoolExecutor(1, task -> {
                Thread t = new Thread(task, "keyrotor-reload");
                t.setDaemon(true);
                return t;
            });
            executor.setRemoveOnCancelPolicy(true);
            return executor;
        }
    }

    /** Runs {@code task} every {@code period}; a task that throws is still run again. */
    static ScheduledFuture<?> every(Duration period, Runnable task) {
        long millis = Math.max(1, period.toMillis());
        return Holder.EXECUTOR.scheduleWithFixedDelay(() -> {
            try {
                task.run();
            } catch (RuntimeException e) {
                // A periodic task that throws is never run again: keep polling.
                Mounted.LOG.log(System.Logger.Level.WARNING,
                        () -> "keyrotor: a background task failed: " + e.getClass().getName());
            }
        }, millis, millis, TimeUnit.MILLISECONDS);
    }
}
