package dev.matview.race;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/**
 * One user's row as matview's view serves it, and nothing more: per group a
 * count, an exact sum and the listed items — at most {@link #LIMIT}, the
 * lowest item ids (matview's default order and keep), each with its name,
 * price and order. A re-delivered item still listed replaces itself.
 */
final class UserView {
    /** The race view's {@code aggregate.items.limit}. */
    static final int LIMIT = 1000;
    static final String[] GROUPS = {"cheap", "affordable", "expensive"};

    record Listed(String name, BigDecimal price, String orderId, int group) {}

    final long[] counts = new long[GROUPS.length];
    final BigDecimal[] sums = {BigDecimal.ZERO, BigDecimal.ZERO, BigDecimal.ZERO};
    @SuppressWarnings("unchecked")
    final TreeMap<String, Listed>[] items = new TreeMap[] {new TreeMap<>(), new TreeMap<>(), new TreeMap<>()};

    static int group(BigDecimal price) {
        if (price.compareTo(BigDecimal.valueOf(5)) < 0) {
            return 0;
        }
        return price.compareTo(BigDecimal.valueOf(50)) <= 0 ? 1 : 2;
    }

    UserView add(Orders.Order order) {
        for (Orders.Item item : order.items()) {
            int g = group(item.price());
            for (int old = 0; old < GROUPS.length; old++) {
                Listed was = items[old].remove(item.id());
                if (was != null) {
                    counts[old] -= 1;
                    sums[old] = sums[old].subtract(was.price());
                }
            }
            counts[g] += 1;
            sums[g] = sums[g].add(item.price());
            TreeMap<String, Listed> list = items[g];
            list.put(item.id(), new Listed(item.name(), item.price(), order.orderId(), g));
            if (list.size() > LIMIT) {
                list.pollLastEntry();
            }
        }
        return this;
    }

    Map<String, RaceRun.GroupFigures> figures() {
        Map<String, RaceRun.GroupFigures> out = new TreeMap<>();
        for (int g = 0; g < GROUPS.length; g++) {
            out.put(GROUPS[g], new RaceRun.GroupFigures(counts[g], sums[g]));
        }
        return out;
    }

    /** Binary, field by field: no reflection, no field names. */
    static Serde<UserView> serde() {
        Serializer<UserView> serializer = (topic, view) -> {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                for (int g = 0; g < GROUPS.length; g++) {
                    out.writeLong(view.counts[g]);
                    Orders.writeDecimal(out, view.sums[g]);
                    out.writeShort(view.items[g].size());
                    for (Map.Entry<String, Listed> e : view.items[g].entrySet()) {
                        out.writeUTF(e.getKey());
                        out.writeUTF(e.getValue().name());
                        Orders.writeDecimal(out, e.getValue().price());
                        out.writeUTF(e.getValue().orderId());
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return bytes.toByteArray();
        };
        Deserializer<UserView> deserializer = (topic, data) -> {
            if (data == null) {
                return null;
            }
            UserView view = new UserView();
            try (DataInputStream in = new DataInputStream(new java.io.ByteArrayInputStream(data))) {
                for (int g = 0; g < GROUPS.length; g++) {
                    view.counts[g] = in.readLong();
                    view.sums[g] = Orders.readDecimal(in);
                    int n = in.readUnsignedShort();
                    for (int i = 0; i < n; i++) {
                        String id = in.readUTF();
                        view.items[g].put(id, new Listed(in.readUTF(), Orders.readDecimal(in), in.readUTF(), g));
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return view;
        };
        return Serdes.serdeFrom(serializer, deserializer);
    }
}
