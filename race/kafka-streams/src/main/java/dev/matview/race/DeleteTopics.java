package dev.matview.race;

import java.util.Arrays;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;

/** Removes the race's source topics once every peer ran: {@code DeleteTopics <bootstrap> <topic>...}. */
public final class DeleteTopics {
    public static void main(String[] args) throws Exception {
        try (Admin admin = Admin.create(Map.<String, Object>of("bootstrap.servers", args[0]))) {
            admin.deleteTopics(Arrays.asList(args).subList(1, args.length)).all().get();
        }
    }
}
