// The floor of a kernel-stamped RTT: what `udp ping -i 0.01` measures (docs/performance.md,
// "Round-trip time"), done by the shortest C that can do it. The client stamps each probe just
// before its sendto() and takes the reply's arrival from the kernel (SO_TIMESTAMPNS); the server
// takes the probe's arrival from the kernel too, stamps just before its sendto() and returns its
// hold (reply stamp - arrival) in the reply, which the client leaves out, as udp and irtt leave
// out their reflector's. What remains is the two sends through the kernel: no program that
// stamps this way measures less here.
//
//   stamped_pingpong server PORT                  answers on 127.0.0.1:PORT (0: any; its port
//                                                 is printed first) until SIGINT or SIGTERM,
//                                                 which end it with exit 0
//   stamped_pingpong client PORT COUNT GAP_US     COUNT probes, GAP_US apart; prints one JSON
//                                                 line: {"probes","replies","p50_ms","p99_ms",
//                                                 "hold_p50_ms"}
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SIZE 64

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);  // the clock SO_TIMESTAMPNS stamps with
  return ns_of(t);
}

// One datagram and its arrival by the kernel's stamp (0 if it gave none); -1 on timeout.
static ssize_t receive(int fd, char *buf, struct sockaddr_in *from, int64_t *arrived) {
  char control[256];
  struct iovec iov = {buf, SIZE};
  struct msghdr msg = {0};
  msg.msg_name = from;
  msg.msg_namelen = sizeof *from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(fd, &msg, 0);
  *arrived = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
      struct timespec t;
      memcpy(&t, CMSG_DATA(c), sizeof t);
      *arrived = ns_of(t);
    }
  }
  return n;
}

static volatile sig_atomic_t stopping = 0;
static void stop(int signal) { (void)signal; stopping = 1; }

static int compare(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "server") && (strcmp(argv[1], "client") || argc < 5))) {
    fprintf(stderr, "usage: stamped_pingpong server PORT | client PORT COUNT GAP_US\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0), on = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  struct sockaddr_in at = {0};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  at.sin_port = htons((uint16_t)atoi(argv[2]));
  char buf[SIZE] = {0};
  if (!strcmp(argv[1], "server")) {
    if (bind(fd, (struct sockaddr *)&at, sizeof at) != 0) {
      perror("bind");
      return 1;
    }
    socklen_t length = sizeof at;
    getsockname(fd, (struct sockaddr *)&at, &length);
    printf("%d\n", ntohs(at.sin_port));
    fflush(stdout);
    // No SA_RESTART: a signal interrupts the blocking recvmsg(), and the loop ends; one that
    // comes just before the call is seen within the receive timeout.
    struct sigaction action = {0};
    action.sa_handler = stop;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    struct timeval wake = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wake, sizeof wake);
    while (!stopping) {
      struct sockaddr_in from;
      int64_t arrived;
      ssize_t n = receive(fd, buf, &from, &arrived);
      if (n < 16 || arrived == 0) continue;
      int64_t hold = now_ns() - arrived;
      memcpy(buf + 8, &hold, sizeof hold);
      sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, sizeof from);
    }
    return 0;
  }
  struct timeval patience = {1, 0};  // a lost probe or reply costs a second, never a hang
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  int count = atoi(argv[3]), gap = atoi(argv[4]), replies = 0;
  if (count < 1 || count > 1000000 || gap < 0) return 2;
  int64_t *rtt = calloc((size_t)count, sizeof *rtt), *held = calloc((size_t)count, sizeof *held);
  for (int i = 0; i < count; i++) {
    if (gap > 0) usleep((useconds_t)gap);
    memcpy(buf, &i, sizeof i);
    int64_t sent = now_ns();
    if (sendto(fd, buf, SIZE, 0, (struct sockaddr *)&at, sizeof at) != SIZE) continue;
    struct sockaddr_in from;
    int64_t arrived = 0, hold;
    int probe = -1;
    // A late reply to an earlier probe is read past, not taken for this one's.
    while (probe != i) {
      if (receive(fd, buf, &from, &arrived) < 16) break;  // timed out: this one is lost
      memcpy(&probe, buf, sizeof probe);
    }
    if (probe != i || arrived == 0) continue;
    memcpy(&hold, buf + 8, sizeof hold);
    rtt[replies] = arrived - sent - hold;
    held[replies++] = hold;
  }
  if (replies == 0) {
    printf("{\"probes\":%d,\"replies\":0,\"p50_ms\":null,\"p99_ms\":null,\"hold_p50_ms\":null}\n",
           count);
    return 1;
  }
  qsort(rtt, (size_t)replies, sizeof *rtt, compare);
  qsort(held, (size_t)replies, sizeof *held, compare);
  // Nearest rank, as udp's quantiles: the smallest value with at least q of them at or below.
  int p50 = (replies + 1) / 2 - 1, p99 = (99 * replies + 99) / 100 - 1;
  printf("{\"probes\":%d,\"replies\":%d,\"p50_ms\":%.6f,\"p99_ms\":%.6f,\"hold_p50_ms\":%.6f}\n",
         count, replies, rtt[p50] / 1e6, rtt[p99] / 1e6, held[p50] / 1e6);
  return 0;
}
