package dev.matview.race;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedWriter;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;

/**
 * What every peer of the race does around its topology: run until it has
 * aggregated the expected items, then write its figures (seconds, CPU, peak
 * RSS) and its rows (per user, per group: count and exact sum) for the
 * comparison with matview, and delete the race's topics.
 */
final class RaceRun {
    static final ObjectMapper JSON = new ObjectMapper();

    /** One group's figures of a row, as the rows file has them. */
    record GroupFigures(long count, java.math.BigDecimal sum) {}

    /** Reads a row's groups from a store value. */
    interface RowReader<V> {
        Map<String, GroupFigures> groups(V value);
    }

    private RaceRun() {}

    static <V> void run(KafkaStreams streams, AtomicLong aggregated, long expectedItems, String store,
            RowReader<V> rows, Path rowsOut, Path figuresOut, String bootstrap, List<String> topics)
            throws Exception {
        long start = System.nanoTime();
        streams.start();
        long lastReport = start;
        while (aggregated.get() < expectedItems) {
            Thread.sleep(20);
            if (streams.state() == KafkaStreams.State.ERROR
                    || streams.state() == KafkaStreams.State.NOT_RUNNING) {
                System.err.println("Kafka Streams stopped: " + streams.state());
                System.exit(1);
            }
            if (System.nanoTime() - lastReport > 5_000_000_000L) {
                lastReport = System.nanoTime();
                System.err.printf("  aggregated %d / %d items (%.0f s)%n", aggregated.get(), expectedItems,
                        (lastReport - start) / 1e9);
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        double cpuSeconds = ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime() / 1e9;
        long peakRssKiB = peakRssKiB();

        ReadOnlyKeyValueStore<String, V> view = streams.store(
                StoreQueryParameters.fromNameAndType(store, QueryableStoreTypes.keyValueStore()));
        long written = 0;
        try (BufferedWriter out = Files.newBufferedWriter(rowsOut, StandardCharsets.UTF_8);
                KeyValueIterator<String, V> all = view.all()) {
            while (all.hasNext()) {
                KeyValue<String, V> row = all.next();
                ObjectNode line = JSON.createObjectNode();
                line.put("key", row.key);
                ObjectNode groups = line.putObject("groups");
                rows.groups(row.value).forEach((name, figures) -> {
                    if (figures.count() > 0) {
                        ObjectNode g = groups.putObject(name);
                        g.put("count", figures.count());
                        g.put("sum", figures.sum().stripTrailingZeros().toPlainString());
                    }
                });
                out.write(JSON.writeValueAsString(line));
                out.newLine();
                written += 1;
            }
        }
        ObjectNode figures = JSON.createObjectNode();
        figures.put("seconds", seconds);
        figures.put("items", aggregated.get());
        figures.put("cpuSeconds", cpuSeconds);
        figures.put("peakRssMiB", peakRssKiB / 1024.0);
        figures.put("rows", written);
        Files.writeString(figuresOut, JSON.writeValueAsString(figures));
        streams.close();
        streams.cleanUp();
        try (Admin admin = Admin.create(Map.<String, Object>of("bootstrap.servers", bootstrap))) {
            admin.deleteTopics(topics).all().get();
        } catch (Exception e) {
            System.err.println("could not delete the race's topics: " + e);
        }
        System.exit(0);
    }

    static long peakRssKiB() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }
}
