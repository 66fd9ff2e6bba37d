"""A minimal DNS responder for the switching experiment: answers every A query with the address in a file.

Usage: dns_responder.py PORT ADDRESS_FILE LOG_FILE. AAAA and other queries get an empty answer. The file is read
on every query; write it by rename so a reader never sees it half-written.
"""
import socket
import struct
import sys


def main():
    port, address_file, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    with open(log_path, "a") as log:
        while True:
            data, peer = sock.recvfrom(512)
            try:
                sock.sendto(answer(data, address_file, log), peer)
            except (ValueError, OSError, struct.error) as error:
                log.write(f"bad query: {error}\n")
                log.flush()


def answer(query, address_file, log):
    question = query[12:]
    end, labels = 0, []
    while question[end] != 0:
        size = question[end]
        labels.append(question[end + 1:end + 1 + size].decode())
        end += size + 1
    qname = question[:end + 1]
    qtype, qclass = struct.unpack(">HH", question[end + 1:end + 5])
    log.write(f"{'.'.join(labels)} {qtype}\n")
    log.flush()
    records = b""
    if qtype == 1:
        with open(address_file) as f:
            address = socket.inet_aton(f.read().strip())
        records = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + address
    header = query[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1 if records else 0, 0, 0)
    return header + qname + struct.pack(">HH", qtype, qclass) + records


if __name__ == "__main__":
    main()
