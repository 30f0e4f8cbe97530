package dev.matview.race;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/**
 * An order with only what the view needs, read from the topic's JSON with
 * Jackson's streaming parser (no tree), and a compact binary form for the
 * repartition topic: the one re-key per order carries orders, not items.
 */
final class Orders {
    private static final JsonFactory FACTORY = new JsonFactory();

    record Item(String id, String name, BigDecimal price) {}

    record Order(String orderId, String userId, List<Item> items) {}

    private Orders() {}

    /** The order of a topic's JSON value; {@code null} when malformed (skipped; matview dead-letters it). */
    static Order parse(byte[] json) {
        if (json == null) {
            return null;
        }
        try (JsonParser p = FACTORY.createParser(json)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            String orderId = null;
            String userId = null;
            List<Item> items = new ArrayList<>();
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken value = p.nextToken();
                switch (field) {
                    case "orderId" -> orderId = p.getValueAsString();
                    case "userId" -> userId = p.getValueAsString();
                    case "items" -> {
                        if (value != JsonToken.START_ARRAY) {
                            return null;
                        }
                        while (p.nextToken() == JsonToken.START_OBJECT) {
                            Item item = item(p);
                            if (item == null) {
                                return null;
                            }
                            items.add(item);
                        }
                    }
                    default -> p.skipChildren();
                }
            }
            return orderId == null || userId == null ? null : new Order(orderId, userId, items);
        } catch (IOException e) {
            return null;
        }
    }

    private static Item item(JsonParser p) throws IOException {
        String id = null;
        String name = "";
        BigDecimal price = null;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken value = p.nextToken();
            switch (field) {
                case "itemId" -> id = p.getValueAsString();
                case "name" -> name = p.getValueAsString("");
                case "price" -> price = value.isNumeric() ? p.getDecimalValue() : null;
                default -> p.skipChildren();
            }
        }
        return id == null || price == null ? null : new Item(id, name, price);
    }

    static void writeDecimal(DataOutputStream out, BigDecimal d) throws IOException {
        byte[] unscaled = d.unscaledValue().toByteArray();
        out.writeInt(d.scale());
        out.writeByte(unscaled.length);
        out.write(unscaled);
    }

    static BigDecimal readDecimal(DataInputStream in) throws IOException {
        int scale = in.readInt();
        byte[] unscaled = new byte[in.readUnsignedByte()];
        in.readFully(unscaled);
        return new BigDecimal(new BigInteger(unscaled), scale);
    }

    /** The binary serde of orders between the re-key and the aggregation. */
    static Serde<Order> serde() {
        Serializer<Order> serializer = (topic, order) -> {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream(64 + 48 * order.items().size());
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                out.writeUTF(order.orderId());
                out.writeUTF(order.userId());
                out.writeShort(order.items().size());
                for (Item item : order.items()) {
                    out.writeUTF(item.id());
                    out.writeUTF(item.name());
                    writeDecimal(out, item.price());
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return bytes.toByteArray();
        };
        Deserializer<Order> deserializer = (topic, data) -> {
            if (data == null) {
                return null;
            }
            try (DataInputStream in = new DataInputStream(new java.io.ByteArrayInputStream(data))) {
                String orderId = in.readUTF();
                String userId = in.readUTF();
                int n = in.readUnsignedShort();
                List<Item> items = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    items.add(new Item(in.readUTF(), in.readUTF(), readDecimal(in)));
                }
                return new Order(orderId, userId, items);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        };
        return Serdes.serdeFrom(serializer, deserializer);
    }

    /** The topic's JSON values, parsed as they are consumed. */
    static Serde<Order> json() {
        Serializer<Order> unused = (topic, order) -> {
            throw new UnsupportedOperationException("orders are only read as JSON");
        };
        Deserializer<Order> deserializer = (topic, data) -> parse(data);
        return Serdes.serdeFrom(unused, deserializer);
    }
}
