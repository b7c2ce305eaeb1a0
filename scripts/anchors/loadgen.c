/*
 * A closed-loop UDP load generator, the C anchor of `deno task bench`'s "reflector capacity,
 * closed loop" section (scripts/bench/closed_loop.ts builds it with gcc -O2 into a temporary
 * directory). It keeps a fixed window of datagrams in flight against HOST:PORT: every reply
 * (or a timeout) frees a slot, and the slot's next datagram goes out at once, in sendmmsg()
 * batches; replies come in recvmmsg() batches. Each reply is checked in full before it counts.
 *
 *   loadgen HOST PORT [--mode raw|ping] [--size BYTES] [--window W] [--duration SECONDS]
 *           [--timeout-ms MS] [--wait spin|block]
 *
 * Modes:
 *   raw   BYTES of text ("udp-loadgen SEQ " and a letter pattern; never the udp magic).
 *         A reply is good if it is the datagram echoed, or "ack:" + the datagram (what
 *         `udp serve` answers raw datagrams with, lib/reflector/raw.ts: 4 bytes longer).
 *   ping  `udp` PING frames of BYTES bytes (docs/protocol.md: 44-byte header, magic DA7A5550,
 *         version 1, type 1, big-endian, padding, CRC-32C of all preceding bytes in the last
 *         4). A reply is good if its CRC-32C is right and it is a PONG (type 2) or the PING
 *         echoed (type 1), of the same length, with our magic, version, flags, length,
 *         attempt, session, sequence and send time, and the padding unchanged; a PONG may
 *         change only its two reflector timestamps (bytes 28 to 43), an echo nothing.
 *
 * A reply that names a datagram already answered or given up on (after --timeout-ms, default
 * 200, its slot sent a new one) and is otherwise good is "late"; anything else is "bad". The sequence number
 * of slot s is generation * W + s, so a reply finds its slot without a search.
 *
 * Prints one JSON line: mode, size, window, sent, replies (good, in time), echo_replies,
 * ack_replies (raw) or pong_replies (ping), late, bad, timeouts, errors, seconds, cpu_s (its
 * own user + system CPU time: near `seconds`, the generator was the bottleneck),
 * waited_s (the time it had nothing to read: near `seconds`, the server bounded the run),
 * replies_per_s, reply_kind ("echo", "ack", "pong", "mixed" or "none").
 *
 * --wait spin (the default) reads with a non-blocking recvmmsg() in a loop, so that the
 * generator, on a core of its own, never sleeps and never pays for waking up (costly on a
 * virtual machine); --wait block sleeps in poll() between batches.
 * Exit 0 after the run, 2 on bad arguments, 1 on a socket error at start.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WINDOW 4096
#define MAX_SIZE 65507
#define BATCH 64
#define HEADER 44
#define CHECK 4

/* --- CRC-32C (Castagnoli, reflected 0x82F63B78), slicing-by-8 --------------------------- */

static uint32_t crc_table[8][256];

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    for (int t = 1; t < 8; t++) {
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    }
  }
}

static uint32_t crc32c(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  while (n >= 8) {
    uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 24);
    uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                  (uint32_t)p[7] << 24;
    c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
        crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
        crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
        crc_table[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
  return c ^ 0xFFFFFFFFu;
}

/* --- Datagrams ------------------------------------------------------------------------------ */

enum mode { RAW, PING };

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Raw text: "udp-loadgen " + 10 digits of the sequence + " " + letters, cut to size. */
static const char RAW_PREFIX[] = "udp-loadgen ";
#define RAW_SEQ_AT 12
#define RAW_MIN 23

static void raw_fill(uint8_t *p, size_t size, uint32_t seq) {
  char head[32];
  snprintf(head, sizeof head, "%s%010u ", RAW_PREFIX, seq);
  for (size_t i = 0; i < size; i++) p[i] = i < RAW_MIN ? (uint8_t)head[i] : 'a' + i % 26;
}

/* The sequence a raw datagram (or its echo) names, or -1 if it does not look like ours. */
static int64_t raw_seq(const uint8_t *p, size_t n) {
  if (n < RAW_MIN || memcmp(p, RAW_PREFIX, RAW_SEQ_AT) != 0) return -1;
  uint64_t seq = 0;
  for (int i = RAW_SEQ_AT; i < RAW_SEQ_AT + 10; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    seq = seq * 10 + (p[i] - '0');
  }
  return seq > 0xFFFFFFFFu ? -1 : (int64_t)seq;
}

static uint8_t pad_byte(size_t i) { return (uint8_t)(i * 131u + 7u); }

static void ping_fill(uint8_t *p, size_t size, uint32_t session, uint32_t seq) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  put32(p, 0xDA7A5550u);
  p[4] = 1;                /* version */
  p[5] = 1;                /* PING */
  put16(p + 6, 0);         /* flags */
  put16(p + 8, (uint16_t)size);
  put16(p + 10, 0);        /* attempt */
  put32(p + 12, session);
  put32(p + 16, seq);
  put32(p + 20, (uint32_t)now.tv_sec);
  put32(p + 24, (uint32_t)now.tv_nsec);
  memset(p + 28, 0, 16);   /* received, replied: 0 in a PING */
  for (size_t i = HEADER; i < size - CHECK; i++) p[i] = pad_byte(i);
  put32(p + size - CHECK, crc32c(p, size - CHECK));
}

/* --- The run --------------------------------------------------------------------------------- */

struct slot {
  uint32_t seq;
  int in_flight;
  double sent_at;
  uint8_t *data;
};

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void usage(void) {
  fprintf(stderr, "usage: loadgen HOST PORT [--mode raw|ping] [--size BYTES] [--window W] "
                  "[--duration SECONDS] [--timeout-ms MS] [--wait spin|block]\n");
  exit(2);
}

struct counts {
  uint64_t sent, replies, echo, ack, pong, late, bad, timeouts, errors;
};

/* Checks one reply against its slot; counts it. Returns the slot it frees, or -1. */
static int check_reply(enum mode mode, const uint8_t *r, size_t n, size_t size, uint32_t session,
                       struct slot *slots, uint32_t window, uint8_t *expect, struct counts *c) {
  int64_t seq;
  int kind; /* 0 echo, 1 ack, 2 pong */
  if (mode == RAW) {
    if (n == size + 4 && memcmp(r, "ack:", 4) == 0) {
      r += 4;
      n -= 4;
      kind = 1;
    } else {
      kind = 0;
    }
    seq = n == size ? raw_seq(r, n) : -1;
    if (seq < 0) goto bad;
    raw_fill(expect, size, (uint32_t)seq);
    if (memcmp(r, expect, size) != 0) goto bad;
  } else {
    if (n != size || crc32c(r, n - CHECK) != get32(r + n - CHECK)) goto bad;
    if (get32(r) != 0xDA7A5550u || r[4] != 1 || (r[5] != 1 && r[5] != 2)) goto bad;
    kind = r[5] == 2 ? 2 : 0;
    if (r[6] != 0 || r[7] != 0 || get32(r + 8) != (uint32_t)size << 16 || get32(r + 12) != session)
      goto bad;
    seq = get32(r + 16);
    for (size_t i = HEADER; i < size - CHECK; i++)
      if (r[i] != pad_byte(i)) goto bad;
    if (kind == 0) {
      for (int i = 28; i < 44; i++)
        if (r[i] != 0) goto bad;
    }
  }
  struct slot *s = &slots[(uint32_t)seq % window];
  if (!s->in_flight || s->seq != (uint32_t)seq) {
    /* a datagram given up on, or never sent */
    if ((uint32_t)seq < s->seq || (s->seq == (uint32_t)seq && !s->in_flight)) {
      c->late++;
      return -1;
    }
    goto bad;
  }
  /* The send time must be the one we wrote (the echo and the PONG keep it). */
  if (mode == PING && memcmp(r + 20, s->data + 20, 8) != 0) goto bad;
  c->replies++;
  if (kind == 0) c->echo++;
  else if (kind == 1) c->ack++;
  else c->pong++;
  s->in_flight = 0;
  return (int)((uint32_t)seq % window);
bad:
  c->bad++;
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 3) usage();
  const char *host = argv[1], *port = argv[2];
  enum mode mode = RAW;
  long size = 64, window = 64, timeout_ms = 200;
  int spin = 1;
  double duration = 5;
  for (int i = 3; i < argc; i++) {
    if (i + 1 >= argc) usage();
    const char *value = argv[++i];
    if (!strcmp(argv[i - 1], "--mode")) {
      if (!strcmp(value, "raw")) mode = RAW;
      else if (!strcmp(value, "ping")) mode = PING;
      else usage();
    } else if (!strcmp(argv[i - 1], "--size")) size = atol(value);
    else if (!strcmp(argv[i - 1], "--window")) window = atol(value);
    else if (!strcmp(argv[i - 1], "--duration")) duration = atof(value);
    else if (!strcmp(argv[i - 1], "--timeout-ms")) timeout_ms = atol(value);
    else if (!strcmp(argv[i - 1], "--wait")) {
      if (!strcmp(value, "spin")) spin = 1;
      else if (!strcmp(value, "block")) spin = 0;
      else usage();
    }
    else usage();
  }
  long min_size = mode == RAW ? RAW_MIN : HEADER + CHECK;
  if (size < min_size || size > MAX_SIZE - 4 || window < 1 || window > MAX_WINDOW ||
      !(duration > 0 && duration <= 3600) || timeout_ms < 1) {
    fprintf(stderr, "loadgen: --size %ld..%d (%s), --window 1..%d, --duration (0, 3600], "
                    "--timeout-ms >= 1\n", min_size, MAX_SIZE - 4, mode == RAW ? "raw" : "ping",
            MAX_WINDOW);
    return 2;
  }
  crc_init();
  if (crc32c((const uint8_t *)"123456789", 9) != 0xE3069283u) {
    fprintf(stderr, "loadgen: CRC-32C self-test failed\n");
    return 1;
  }

  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *ai;
  int err = getaddrinfo(host, port, &hints, &ai);
  if (err) {
    fprintf(stderr, "loadgen: %s:%s: %s\n", host, port, gai_strerror(err));
    return 2;
  }
  int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    perror("loadgen: socket");
    return 1;
  }
  freeaddrinfo(ai);
  int buffer = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);

  uint32_t session;
  {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    session = (uint32_t)(t.tv_nsec ^ (t.tv_sec << 12) ^ ((uint32_t)getpid() << 16));
  }
  struct slot *slots = calloc(window, sizeof *slots);
  uint8_t *send_data = malloc((size_t)window * size);
  uint8_t *recv_data = malloc((size_t)BATCH * (size + 8));
  uint8_t *expect = malloc(size);
  struct mmsghdr *out = calloc(window, sizeof *out);
  struct iovec *out_iov = calloc(window, sizeof *out_iov);
  struct mmsghdr in[BATCH];
  struct iovec in_iov[BATCH];
  uint32_t *queue = malloc(window * sizeof *queue); /* slots waiting to send their next */
  uint32_t generation[MAX_WINDOW] = {0};
  if (!slots || !send_data || !recv_data || !expect || !out || !out_iov || !queue) return 1;
  for (long s = 0; s < window; s++) slots[s].data = send_data + s * size;
  memset(in, 0, sizeof in);
  for (int i = 0; i < BATCH; i++) {
    in_iov[i].iov_base = recv_data + (size_t)i * (size + 8);
    in_iov[i].iov_len = size + 8; /* room to see a longer reply than any good one */
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }

  struct counts c = {0};
  uint32_t queued = 0;
  for (long s = 0; s < window; s++) queue[queued++] = (uint32_t)s;
  const double start = now_s(), end = start + duration, timeout = timeout_ms / 1000.0;
  double next_scan = start + timeout / 4;
  double t = start, waited = 0, waiting_since = 0;
  while (t < end) {
    /* Send every freed slot's next datagram. */
    uint32_t prepared = 0;
    for (uint32_t q = 0; q < queued; q++) {
      uint32_t s = queue[q];
      struct slot *slot = &slots[s];
      slot->seq = generation[s]++ * (uint32_t)window + s;
      if (mode == RAW) raw_fill(slot->data, size, slot->seq);
      else ping_fill(slot->data, size, session, slot->seq);
      slot->in_flight = 1;
      slot->sent_at = t;
      out_iov[prepared].iov_base = slot->data;
      out_iov[prepared].iov_len = size;
      memset(&out[prepared], 0, sizeof out[prepared]);
      out[prepared].msg_hdr.msg_iov = &out_iov[prepared];
      out[prepared].msg_hdr.msg_iovlen = 1;
      prepared++;
    }
    queued = 0;
    for (uint32_t done = 0; done < prepared;) {
      int n = sendmmsg(fd, out + done, prepared - done, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        /* ECONNREFUSED (an ICMP error came back), a full buffer: those slots time out. */
        c.errors++;
        done++;
        continue;
      }
      done += n;
      c.sent += n;
    }
    /*
     * Read replies in batches: spinning on a non-blocking recvmmsg() (the default: the
     * generator has its core to itself, and never pays for waking up), or after a poll() that
     * sleeps at most until the next timeout scan (--wait block). Either way the time with
     * nothing to read is "waited": the share of the run the generator waited for the server.
     */
    if (!spin) {
      double before = now_s();
      int wait_ms = (int)((next_scan - before) * 1000) + 1;
      struct pollfd p = {.fd = fd, .events = POLLIN};
      int ready = poll(&p, 1, wait_ms > 0 ? wait_ms : 0);
      waited += now_s() - before;
      if (ready <= 0) goto scan;
    }
    for (int round = 0; round < 16; round++) {
      int n = recvmmsg(fd, in, BATCH, MSG_DONTWAIT, NULL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) c.errors++;
        if (spin && round == 0 && waiting_since == 0) waiting_since = now_s();
        break;
      }
      if (waiting_since != 0) {
        waited += now_s() - waiting_since;
        waiting_since = 0;
      }
      for (int i = 0; i < n; i++) {
        size_t len = in[i].msg_len;
        if (in[i].msg_hdr.msg_flags & MSG_TRUNC) {
          c.bad++;
          continue;
        }
        int freed = check_reply(mode, in_iov[i].iov_base, len, size, session, slots, window,
                                expect, &c);
        if (freed >= 0) queue[queued++] = (uint32_t)freed;
      }
      if (n < BATCH) break;
    }
  scan:
    t = now_s();
    if (t >= next_scan) {
      /* Datagrams lost (or very late): give up on them, so the window stays full. */
      for (long s = 0; s < window; s++) {
        if (slots[s].in_flight && t - slots[s].sent_at >= timeout) {
          slots[s].in_flight = 0;
          c.timeouts++;
          queue[queued++] = (uint32_t)s;
        }
      }
      next_scan = t + timeout / 4;
    }
  }
  double seconds = now_s() - start;
  if (waiting_since != 0) waited += now_s() - waiting_since;
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  double cpu_s = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
                 usage.ru_stime.tv_usec / 1e6;
  const char *kind = c.replies == 0 ? "none"
                     : c.echo == c.replies ? "echo"
                     : c.ack == c.replies ? "ack"
                     : c.pong == c.replies ? "pong" : "mixed";
  printf("{\"mode\":\"%s\",\"size\":%ld,\"window\":%ld,\"sent\":%llu,\"replies\":%llu,"
         "\"echo_replies\":%llu,\"%s\":%llu,\"late\":%llu,\"bad\":%llu,\"timeouts\":%llu,"
         "\"errors\":%llu,\"seconds\":%.3f,\"cpu_s\":%.3f,\"waited_s\":%.3f,\"replies_per_s\":%.1f,"
         "\"reply_kind\":\"%s\"}\n",
         mode == RAW ? "raw" : "ping", size, window, (unsigned long long)c.sent,
         (unsigned long long)c.replies, (unsigned long long)c.echo,
         mode == RAW ? "ack_replies" : "pong_replies",
         (unsigned long long)(mode == RAW ? c.ack : c.pong), (unsigned long long)c.late,
         (unsigned long long)c.bad, (unsigned long long)c.timeouts,
         (unsigned long long)c.errors, seconds, cpu_s, waited, c.replies / seconds, kind);
  close(fd);
  return 0;
}
