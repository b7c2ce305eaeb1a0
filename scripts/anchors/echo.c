/*
 * A UDP echo server in C, the anchor `udp serve` is compared with in `deno task bench`'s
 * "reflector capacity, closed loop" section: recvmmsg() a batch of up to 64 datagrams, then
 * sendmmsg() each back to its sender, unchanged; nothing else. The harness builds it with
 * gcc -O2 into a temporary directory.
 *
 *   echo [PORT] [HOST]     (default port 0, host 127.0.0.1)
 *
 * Prints the port it is bound to on its first line (useful with port 0), then echoes until
 * SIGINT or SIGTERM, which end it with exit 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define SIZE 65536

static volatile sig_atomic_t stopping = 0;
static void stop(int signal) { (void)signal; stopping = 1; }

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  const char *host = argc > 2 ? argv[2] : "127.0.0.1";
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &address.sin_addr) != 1) {
    fprintf(stderr, "usage: echo [PORT] [IPV4 HOST]\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
    perror("echo: bind");
    return 1;
  }
  int buffer = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  socklen_t length = sizeof address;
  getsockname(fd, (struct sockaddr *)&address, &length);
  printf("%d\n", ntohs(address.sin_port));
  fflush(stdout);
  /* No SA_RESTART: a signal interrupts the blocking recvmmsg(), and the loop ends. */
  struct sigaction action = {.sa_handler = stop};
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGTERM, &action, NULL);

  static char data[BATCH][SIZE];
  struct sockaddr_in peers[BATCH];
  struct iovec iov[BATCH];
  struct mmsghdr messages[BATCH];
  while (!stopping) {
    for (int i = 0; i < BATCH; i++) {
      iov[i] = (struct iovec){.iov_base = data[i], .iov_len = SIZE};
      messages[i] = (struct mmsghdr){0};
      messages[i].msg_hdr.msg_name = &peers[i];
      messages[i].msg_hdr.msg_namelen = sizeof peers[i];
      messages[i].msg_hdr.msg_iov = &iov[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    /* Blocks for the first datagram, then takes whatever else is already queued. */
    int n = recvmmsg(fd, messages, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("echo: recvmmsg");
      return 1;
    }
    for (int i = 0; i < n; i++) iov[i].iov_len = messages[i].msg_len;
    for (int sent = 0; sent < n;) {
      int k = sendmmsg(fd, messages + sent, n - sent, 0);
      if (k < 0) {
        if (errno == EINTR && !stopping) continue;
        sent++; /* the peer's ICMP error, a full buffer: that datagram is dropped */
        continue;
      }
      sent += k;
    }
  }
  close(fd);
  return 0;
}
