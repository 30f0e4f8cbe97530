package dev.matview.race;

import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The same view as an expert writes it in the Kafka Streams DSL (see
 * race/kafka-streams/README.md for why each choice): orders parsed once
 * with a streaming parser, re-keyed by user once per order (the repartition
 * topic carries compact binary orders), aggregated into per-user state that
 * keeps exactly what the view serves, with the store cache, commit interval,
 * bounded RocksDB and one stream thread per core. {@code --eos} runs it with
 * {@code processing.guarantee=exactly_once_v2}.
 *
 * <p>Arguments: as {@link ItemsByPrice}, then optionally {@code --eos}.
 */
public final class ExpertItemsByPrice {
    static final String STORE = "user-views";
    static final String BY_USER = "orders-by-user";

    public static void main(String[] args) throws Exception {
        if (args.length != 7 && !(args.length == 8 && args[7].equals("--eos"))) {
            System.err.println("usage: ExpertItemsByPrice <bootstrap> <topic> <application-id> <state-dir> <items>"
                    + " <rows-out> <figures-out> [--eos]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        String app = args[2];
        boolean eos = args.length == 8;

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[3]);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Runtime.getRuntime().availableProcessors());
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 128L << 20);
        props.put(StreamsConfig.ROCKSDB_CONFIG_SETTER_CLASS_CONFIG, BoundedRocksDb.class);
        props.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG, StreamsConfig.OPTIMIZE);
        if (eos) {
            props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
            // EOS defaults to 100 ms; each commit ends a transaction. 1 s keeps
            // transactions large while reads stay within a second.
            props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        } else {
            props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 30_000);
        }
        props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 50);
        props.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 256 * 1024);
        props.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), 5000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MIN_BYTES_CONFIG), 64 * 1024);

        AtomicLong aggregated = new AtomicLong();
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(topic, Consumed.with(Serdes.ByteArray(), Orders.json()))
                .filter((key, order) -> order != null)
                .selectKey((key, order) -> order.userId())
                .groupByKey(Grouped.with(BY_USER, Serdes.String(), Orders.serde()))
                .aggregate(
                        UserView::new,
                        (user, order, view) -> {
                            aggregated.addAndGet(order.items().size());
                            return view.add(order);
                        },
                        Materialized.<String, UserView, KeyValueStore<Bytes, byte[]>>as(STORE)
                                .withKeySerde(Serdes.String())
                                .withValueSerde(UserView.serde())
                                .withCachingEnabled());

        KafkaStreams streams = new KafkaStreams(builder.build(props), props);
        RaceRun.run(streams, aggregated, Long.parseLong(args[4]), STORE, UserView::figures, Path.of(args[5]),
                Path.of(args[6]), bootstrap,
                List.of(app + "-" + BY_USER + "-repartition", app + "-" + STORE + "-changelog"));
    }
}
