package dev.matview.race;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The shop's items grouped by price (cheap &lt; 5, affordable 5–50, expensive &gt; 50)
 * per user, the way the classic CQRS articles write it: re-key every item by user,
 * group by key, aggregate into a RocksDB store. Items are kept by id so that a
 * re-delivered item replaces itself (what matview's view does).
 *
 * <p>Arguments: bootstrap servers, topic, application id, state directory, the
 * number of items to wait for, the file for the rows, the file for the figures.
 * Settings are Kafka Streams' defaults.
 */
public final class ItemsByPrice {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String STORE = "items-by-price";

    /** One user's row: per item id its group and price; totals per group. */
    public static final class UserRow {
        public TreeMap<String, Item> items = new TreeMap<>();
        public TreeMap<String, Totals> groups = new TreeMap<>();

        UserRow add(String itemId, Item item) {
            Item old = items.put(itemId, item);
            if (old != null) {
                groups.get(old.group).remove(old.price);
            }
            groups.computeIfAbsent(item.group, g -> new Totals()).add(item.price);
            return this;
        }
    }

    public static final class Item {
        public String group;
        public BigDecimal price;
        public String name;
        public String orderId;
    }

    public static final class Totals {
        public long count;
        public BigDecimal sum = BigDecimal.ZERO;

        void add(BigDecimal price) {
            count += 1;
            sum = sum.add(price);
        }

        void remove(BigDecimal price) {
            count -= 1;
            sum = sum.subtract(price);
        }
    }

    static String group(BigDecimal price) {
        if (price.compareTo(BigDecimal.valueOf(5)) < 0) {
            return "cheap";
        }
        return price.compareTo(BigDecimal.valueOf(50)) <= 0 ? "affordable" : "expensive";
    }

    /** JSON serde through Jackson, as most teams write one. */
    static <T> Serde<T> json(Class<T> type) {
        Serializer<T> serializer = (topic, value) -> {
            try {
                return JSON.writeValueAsBytes(value);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        };
        Deserializer<T> deserializer = (topic, bytes) -> {
            try {
                return bytes == null ? null : JSON.readValue(bytes, type);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        };
        return Serdes.serdeFrom(serializer, deserializer);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println(
                    "usage: ItemsByPrice <bootstrap> <topic> <application-id> <state-dir> <items> <rows-out> <figures-out>");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        long expectedItems = Long.parseLong(args[4]);
        Path rowsOut = Path.of(args[5]);
        Path figuresOut = Path.of(args[6]);

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[2]);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[3]);
        props.put("auto.offset.reset", "earliest");

        AtomicLong aggregated = new AtomicLong();
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(topic, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMap((key, value) -> {
                    List<KeyValue<String, ObjectNode>> out = new ArrayList<>();
                    try {
                        JsonNode order = JSON.readTree(value);
                        for (JsonNode item : order.path("items")) {
                            ObjectNode record = item.deepCopy();
                            record.put("orderId", order.path("orderId").asText());
                            out.add(KeyValue.pair(order.path("userId").asText(), record));
                        }
                    } catch (IOException e) {
                        // A malformed order is skipped (matview dead-letters it).
                    }
                    return out;
                })
                .groupByKey(Grouped.with(Serdes.String(), json(ObjectNode.class)))
                .aggregate(
                        UserRow::new,
                        (user, record, row) -> {
                            Item item = new Item();
                            item.price = record.path("price").decimalValue();
                            item.group = group(item.price);
                            item.name = record.path("name").asText();
                            item.orderId = record.path("orderId").asText();
                            aggregated.incrementAndGet();
                            return row.add(record.path("itemId").asText(), item);
                        },
                        Materialized.<String, UserRow, KeyValueStore<Bytes, byte[]>>as(STORE)
                                .withKeySerde(Serdes.String())
                                .withValueSerde(json(UserRow.class)));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        String app = args[2];
        RaceRun.RowReader<UserRow> rows = row -> {
            Map<String, RaceRun.GroupFigures> out = new TreeMap<>();
            row.groups.forEach((name, t) -> out.put(name, new RaceRun.GroupFigures(t.count, t.sum)));
            return out;
        };
        // What Kafka Streams made for the aggregation (the race removes the source).
        RaceRun.run(streams, aggregated, expectedItems, STORE, rows, rowsOut, figuresOut, bootstrap,
                List.of(app + "-" + STORE + "-repartition", app + "-" + STORE + "-changelog"));
    }
}
