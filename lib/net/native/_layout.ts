/**
 * The C library's structures and constants as the native backend reads and writes them, for
 * Linux on x86-64 (the one platform it is used and tested on): every offset a name, so that no
 * `header + 40` needs a comment to be read. Pointers, `size_t` and `time_t` are 64-bit there;
 * `socklen_t` and `int` are 32-bit. Offsets are in bytes from the start of the structure.
 *
 * @module
 */

// Socket families, types and options (<sys/socket.h>, <asm-generic/socket.h>).
/** `AF_INET`: IPv4. */
export const AF_INET = 2;
/** `AF_INET6`: IPv6. */
export const AF_INET6 = 10;
/** `SOCK_DGRAM`: a datagram socket. */
export const SOCK_DGRAM = 2;
/** `SOCK_CLOEXEC`: closed on exec(), so no child inherits it. */
export const SOCK_CLOEXEC = 0o2000000;
/** `MSG_DONTWAIT`: return at once when nothing waits. */
export const MSG_DONTWAIT = 0x40;
/** `SOL_SOCKET`: the level of the socket options below, and of their control messages. */
export const SOL_SOCKET = 1;
/** `SO_RCVBUF`: the receive buffer's size. */
export const SO_RCVBUF = 8;
/** `SO_RCVBUFFORCE`: `SO_RCVBUF` past `net.core.rmem_max`, with CAP_NET_ADMIN. */
export const SO_RCVBUFFORCE = 33;
/** `SO_TIMESTAMPNS`: stamp arrivals; its control message, SCM_TIMESTAMPNS, has the same number. */
export const SO_TIMESTAMPNS = 35;
/** `SO_RXQ_OVFL`: each datagram's control messages then say how many the socket dropped. */
export const SO_RXQ_OVFL = 40;

/** `EFD_NONBLOCK`: an eventfd whose read returns at once when it is not set. */
export const EFD_NONBLOCK = 0o4000;
/** `EFD_CLOEXEC`: closed on exec(), so no child inherits it. */
export const EFD_CLOEXEC = 0o2000000;

/** `POLLIN`: `ppoll()` reports data to read. */
export const POLLIN = 0x001;
/** `POLLERR`: `ppoll()` reports an error pending (always, whatever was asked): the error queue. */
export const POLLERR = 0x008;
/** `CLOCK_REALTIME`: the clock `SO_TIMESTAMPNS` stamps with. */
export const CLOCK_REALTIME = 0;
/** `CLOCK_MONOTONIC`: the clock `performance.now()` counts on. */
export const CLOCK_MONOTONIC = 1;

// IP options and their control messages (<netinet/in.h>, <bits/in.h>). An IPv6 socket takes
// the IPv4 ones too: they are what its IPv4-mapped peers' datagrams are sent and read with.
/** `IPPROTO_IP`: the level of the IPv4 options below, and of their control messages. */
export const IPPROTO_IP = 0;
/** `IP_TOS`: the TOS byte sent with (an int); its control message read, one byte, or sent. */
export const IP_TOS = 1;
/** `IP_TTL`: the TTL sent with (an int); its control message, an int. */
export const IP_TTL = 2;
/**
 * `IP_PKTINFO`: each datagram's control messages then hold the address it was sent to (a
 * struct in_pktinfo); sent, the same message picks the source address of a datagram.
 */
export const IP_PKTINFO = 8;
/** `IP_RECVTTL`: each datagram's control messages then hold the TTL it arrived with. */
export const IP_RECVTTL = 12;
/** `IP_RECVTOS`: each datagram's control messages then hold the TOS byte it arrived with. */
export const IP_RECVTOS = 13;
/** `IPPROTO_IPV6`: the level of the IPv6 options below, and of their control messages. */
export const IPPROTO_IPV6 = 41;
/** `IPV6_UNICAST_HOPS`: the hop limit sent with (an int). */
export const IPV6_UNICAST_HOPS = 16;
/** `IPV6_RECVHOPLIMIT`: each datagram's control messages then hold its hop limit. */
export const IPV6_RECVHOPLIMIT = 51;
/** `IPV6_HOPLIMIT`: the hop limit's control message, an int. */
export const IPV6_HOPLIMIT = 52;
/** `IPV6_RECVPKTINFO`: each datagram's control messages then hold the address it was sent to. */
export const IPV6_RECVPKTINFO = 49;
/** `IPV6_PKTINFO`: that control message (a struct in6_pktinfo), read or sent (the source). */
export const IPV6_PKTINFO = 50;
/** `IPV6_RECVTCLASS`: each datagram's control messages then hold its traffic class. */
export const IPV6_RECVTCLASS = 66;
/** `IPV6_TCLASS`: the traffic class sent with (an int), and its control message, an int. */
export const IPV6_TCLASS = 67;

// Path MTU discovery, the error queue and the device (<bits/in.h>, <linux/errqueue.h>).
/** `SO_BINDTODEVICE`: sends and receives only through the interface named (a string). */
export const SO_BINDTODEVICE = 25;
/** `IP_MTU_DISCOVER`: whether datagrams leave with don't-fragment (an int, `IP_PMTUDISC_*`). */
export const IP_MTU_DISCOVER = 10;
/** `IP_RECVERR`: ICMP errors about the socket's datagrams go to its error queue, in full. */
export const IP_RECVERR = 11;
/** `IPV6_MTU_DISCOVER`: as `IP_MTU_DISCOVER`, for IPv6 (`IPV6_PMTUDISC_*`, the same values). */
export const IPV6_MTU_DISCOVER = 23;
/** `IPV6_RECVERR`: as `IP_RECVERR`, for ICMPv6; also the level-41 control message's type. */
export const IPV6_RECVERR = 25;
/** `IP_PMTUDISC_*`: never set DF, set it until the route says fragment, always, and always
 * without heeding the route's path MTU (a probe of a size the route thinks too big). */
export const PMTUDISC = { dont: 0, want: 1, do: 2, probe: 3 } as const;
/** `MSG_ERRQUEUE`: a receive reads the socket's error queue, not its datagrams. */
export const MSG_ERRQUEUE = 0x2000;
// struct sock_extended_err { u32 ee_errno; u8 ee_origin, ee_type, ee_code, ee_pad;
//   u32 ee_info; u32 ee_data; }, then the offender's sockaddr (SO_EE_OFFENDER).
/** Offset of `ee_errno`. */
export const EE_ERRNO = 0;
/** Offset of `ee_origin`: `SO_EE_ORIGIN_LOCAL` (1), `_ICMP` (2), `_ICMP6` (3), ... */
export const EE_ORIGIN = 4;
/** Offset of `ee_type`: the ICMP type. */
export const EE_TYPE = 5;
/** Offset of `ee_code`: the ICMP code. */
export const EE_CODE = 6;
/** Offset of `ee_info`: the next-hop MTU of a "fragmentation needed" or "packet too big". */
export const EE_INFO = 8;
/** `sizeof(struct sock_extended_err)`: the offender's sockaddr follows. */
export const EE_SIZE = 16;
/** `SO_EE_ORIGIN_LOCAL`: this host's own error (a datagram too big for its interface). */
export const EE_ORIGIN_LOCAL = 1;
/** `SO_EE_ORIGIN_ICMP`. */
export const EE_ORIGIN_ICMP = 2;
/** `SO_EE_ORIGIN_ICMP6`. */
export const EE_ORIGIN_ICMP6 = 3;

// struct sockaddr_in { sa_family_t sin_family; in_port_t sin_port; struct in_addr sin_addr; … }
// struct sockaddr_in6 { sa_family_t sin6_family; in_port_t sin6_port; uint32_t sin6_flowinfo;
//                       struct in6_addr sin6_addr; uint32_t sin6_scope_id; }
/** `sin_family`/`sin6_family`: a u16 in the host's byte order (little-endian). */
export const SOCKADDR_FAMILY = 0;
/** `sin_port`/`sin6_port`: a u16 in network byte order. */
export const SOCKADDR_PORT = 2;
/** `sin_addr`: 4 bytes. */
export const SOCKADDR_IN_ADDR = 4;
/** `sizeof(struct sockaddr_in)`. */
export const SOCKADDR_IN_SIZE = 16;
/** `sin6_addr`: 16 bytes. */
export const SOCKADDR_IN6_ADDR = 8;
/** `sin6_scope_id`: what follows the address. */
export const SOCKADDR_IN6_SCOPE_ID = 24;
/** `sizeof(struct sockaddr_in6)`. */
export const SOCKADDR_IN6_SIZE = 28;
/** Room for either: `sockaddr_in6`, the larger. */
export const SOCKADDR_SIZE = SOCKADDR_IN6_SIZE;

// struct iovec { void *iov_base; size_t iov_len; }
/** `iov_base`: where the data is. */
export const IOVEC_BASE = 0;
/** `iov_len`: how many bytes. */
export const IOVEC_LEN = 8;
/** `sizeof(struct iovec)`. */
export const IOVEC_SIZE = 16;

// struct msghdr { void *msg_name; socklen_t msg_namelen; struct iovec *msg_iov;
//                 size_t msg_iovlen; void *msg_control; size_t msg_controllen; int msg_flags; }
/** `msg_name`: the peer's sockaddr. */
export const MSGHDR_NAME = 0;
/** `msg_namelen`: its room going in, its length coming out. */
export const MSGHDR_NAMELEN = 8;
/** `msg_iov`: the data's iovecs. */
export const MSGHDR_IOV = 16;
/** `msg_iovlen`: how many. */
export const MSGHDR_IOVLEN = 24;
/** `msg_control`: room for control messages. */
export const MSGHDR_CONTROL = 32;
/** `msg_controllen`: its size going in, the control messages' length coming out. */
export const MSGHDR_CONTROLLEN = 40;
/** `sizeof(struct msghdr)`. */
export const MSGHDR_SIZE = 56;

// struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; }: the msghdr comes first, so
// its fields have the offsets above within an mmsghdr too.
/** `msg_len`: the bytes sent or received. */
export const MMSGHDR_LEN = MSGHDR_SIZE;
/** `sizeof(struct mmsghdr)`: the msghdr, msg_len and padding to 8 bytes. */
export const MMSGHDR_SIZE = 64;

// struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } then the data.
/** `cmsg_len`: the header and the data (a size_t: its high half is 0). */
export const CMSGHDR_LEN = 0;
/** `cmsg_level`: `SOL_SOCKET`, `IPPROTO_IP` or `IPPROTO_IPV6` for the messages used here. */
export const CMSGHDR_LEVEL = 8;
/** `cmsg_type`: which option it is for. */
export const CMSGHDR_TYPE = 12;
/** `sizeof(struct cmsghdr)`, where the data starts (`CMSG_DATA`). */
export const CMSGHDR_SIZE = 16;
/** `CMSG_ALIGN` rounds to 8 bytes: `(length + CMSG_ALIGN_MASK) & ~CMSG_ALIGN_MASK`. */
export const CMSG_ALIGN_MASK = 7;
/** `CMSG_LEN(sizeof(int))`: a control message whose data is an int. */
export const CMSG_INT_LEN = CMSGHDR_SIZE + 4;
/** `CMSG_SPACE(sizeof(int))`: the room it takes, padded to 8 bytes. */
export const CMSG_INT_SPACE = CMSGHDR_SIZE + 8;

// struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst; struct in_addr ipi_addr; }
/** `ipi_spec_dst`: sent, the source address to send from. */
export const IN_PKTINFO_SPEC_DST = 4;
/** `ipi_addr`: received, the address in the datagram's header: where it was sent to. */
export const IN_PKTINFO_ADDR = 8;
/** `sizeof(struct in_pktinfo)`. */
export const IN_PKTINFO_SIZE = 12;
// struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned int ipi6_ifindex; }
/** `ipi6_addr`: received, where the datagram was sent to; sent, the source address. */
export const IN6_PKTINFO_ADDR = 0;
/** `sizeof(struct in6_pktinfo)`. */
export const IN6_PKTINFO_SIZE = 20;

// struct timespec { time_t tv_sec; long tv_nsec; }
/** `tv_sec`. */
export const TIMESPEC_SEC = 0;
/** `tv_nsec`. */
export const TIMESPEC_NSEC = 8;
/** `sizeof(struct timespec)`. */
export const TIMESPEC_SIZE = 16;

// struct pollfd { int fd; short events; short revents; }
/** `fd`. */
export const POLLFD_FD = 0;
/** `events`: what to wait for. */
export const POLLFD_EVENTS = 4;
/** `revents`: what happened (a u16: two bytes, both 0 when nothing did). */
export const POLLFD_REVENTS = 6;
/** `sizeof(struct pollfd)`. */
export const POLLFD_SIZE = 8;
