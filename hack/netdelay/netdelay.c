/*
 * netdelay: holds every packet of an NFQUEUE queue for a fixed time, then
 * lets it through, in arrival order. The test environment's stand-in for
 * `tc netem delay` on kernels built without sch_netem: iptables sends a
 * host's packets (both ways) to the queue, this program delays them; loss
 * is iptables' own `statistic` match.
 *
 *   netdelay QUEUE DELAY_MS
 *
 * Runs until killed. The queue is fail-open (packets pass if this program
 * lags behind), and long enough for a link's worth of packets in flight.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define HELD_MAX 262144

struct held {
    uint32_t id;
    int64_t due_ns;
};

static struct held held[HELD_MAX];
static size_t head, count;
static int64_t delay_ns;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int on_packet(struct nfq_q_handle *queue, struct nfgenmsg *msg, struct nfq_data *data, void *unused) {
    (void)msg;
    (void)unused;
    struct nfqnl_msg_packet_hdr *header = nfq_get_msg_packet_hdr(data);
    if (!header) return 0;
    uint32_t id = ntohl(header->packet_id);
    if (count == HELD_MAX) {
        /* Full: let it through now rather than lose it. */
        return nfq_set_verdict(queue, id, NF_ACCEPT, 0, NULL);
    }
    held[(head + count) % HELD_MAX] = (struct held){id, now_ns() + delay_ns};
    count++;
    return 0;
}

/* Lets through every packet whose time is up; the time until the next. */
static int release(struct nfq_q_handle *queue) {
    int64_t now = now_ns();
    while (count > 0 && held[head].due_ns <= now) {
        nfq_set_verdict(queue, held[head].id, NF_ACCEPT, 0, NULL);
        head = (head + 1) % HELD_MAX;
        count--;
    }
    if (count == 0) return 1000;
    int64_t wait_ms = (held[head].due_ns - now) / 1000000;
    return wait_ms < 1 ? 1 : (int)wait_ms;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: netdelay QUEUE DELAY_MS\n");
        return 2;
    }
    int queue_num = atoi(argv[1]);
    delay_ns = (int64_t)atoi(argv[2]) * 1000000;
    struct nfq_handle *handle = nfq_open();
    if (!handle) {
        perror("nfq_open");
        return 1;
    }
    nfq_unbind_pf(handle, AF_INET);
    if (nfq_bind_pf(handle, AF_INET) < 0) {
        perror("nfq_bind_pf");
        return 1;
    }
    struct nfq_q_handle *queue = nfq_create_queue(handle, queue_num, &on_packet, NULL);
    if (!queue) {
        perror("nfq_create_queue");
        return 1;
    }
    if (nfq_set_mode(queue, NFQNL_COPY_META, 0) < 0) {
        perror("nfq_set_mode");
        return 1;
    }
    nfq_set_queue_maxlen(queue, HELD_MAX);
    nfq_set_queue_flags(queue, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
    int fd = nfq_fd(handle);
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    char buffer[65536];
    fprintf(stderr, "netdelay: queue %d, %s ms\n", queue_num, argv[2]);
    for (;;) {
        struct pollfd wait = {.fd = fd, .events = POLLIN};
        int ready = poll(&wait, 1, release(queue));
        if (ready > 0) {
            ssize_t got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (got > 0) nfq_handle_packet(handle, buffer, (int)got);
            else if (got < 0 && errno != EAGAIN && errno != ENOBUFS) {
                perror("recv");
                return 1;
            }
        }
        release(queue);
    }
}
