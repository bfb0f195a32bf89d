"""A small threaded Modbus TCP server on 127.0.0.1 that a test can make misbehave the way real
plants and networks do, which the emulator (pymodbus) cannot: answer late, drop the connection
after or before applying a request, or answer with an exception code, per request (`hook`).

Registers follow the default map (contract §4): enable 1, P setpoint 86, Q setpoint 88, P battery
270, Q battery 272; the battery follows the setpoints while enable is 1 (unless `frozen_battery`).
"""
from __future__ import annotations

import socket
import struct
import threading
import time


class FaultyPlant:
    """Holding registers 0..399, unit any. `hook(fc, addr, values)` -> None | ("exc", code) |
    ("delay", s) (apply then answer late) | ("drop",) (apply then close, no answer) |
    ("drop_noapply",) | ("raw", pdu) (answer this PDU, nothing applied). Simple plant model: p_battery = p_setpoint while enable == 1, else follows
    `decay` (None: 0 at once)."""

    def __init__(self, port=0, model=True):
        self.regs = [0] * 400
        self.lock = threading.Lock()
        self.model = model
        self.frozen_battery = False
        self.hook = None
        self.answer_unit = None   # answer with this unit id whatever the request's (a plant with its own address)
        self.requests = []
        self.conns = []
        self._stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True, name="faulty_plant_accept")
        t.start()
        self.threads.append(t)

    def _apply_model(self):
        if not self.model or self.frozen_battery:
            return
        en = self.regs[1] == 1
        self.regs[270] = self.regs[86] if en else 0
        self.regs[272] = self.regs[88] if en else 0

    def set(self, addr, values):
        with self.lock:
            self.regs[addr:addr + len(values)] = values
            self._apply_model()

    def get(self, addr, count=1):
        with self.lock:
            return self.regs[addr:addr + count]

    def drop_all(self):
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns.clear()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True, name="faulty_plant_conn")
            t.start()
            self.threads.append(t)

    @staticmethod
    def _recv(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError
            buf += chunk
        return buf

    def _serve(self, conn):
        conn.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    head = self._recv(conn, 7)
                except socket.timeout:
                    continue
                tid, pid, length, unit = struct.unpack(">HHHB", head)
                unit = unit if self.answer_unit is None else self.answer_unit
                conn.settimeout(2)
                pdu = self._recv(conn, length - 1)
                conn.settimeout(0.2)
                fc = pdu[0]
                values = None
                if fc == 3:
                    addr, count = struct.unpack(">HH", pdu[1:5])
                elif fc == 6:
                    addr, v = struct.unpack(">HH", pdu[1:5])
                    values = [v]
                elif fc == 16:
                    addr, count, nbytes = struct.unpack(">HHB", pdu[1:6])
                    values = list(struct.unpack(">" + "H" * count, pdu[6:6 + 2 * count]))
                else:
                    self._send(conn, tid, unit, bytes([fc | 0x80, 1]))
                    continue
                self.requests.append((time.monotonic(), fc, addr, values if values is not None else count))
                action = self.hook(fc, addr, values) if self.hook else None
                if action and action[0] == "exc":
                    self._send(conn, tid, unit, bytes([fc | 0x80, action[1]]))
                    continue
                if action and action[0] == "raw":
                    self._send(conn, tid, unit, action[1])
                    continue
                if action and action[0] == "drop_noapply":
                    conn.close()
                    return
                if values is not None:
                    self.set(addr, values)
                    reply = pdu[:5]
                else:
                    regs = self.get(addr, count)
                    reply = bytes([3, 2 * count]) + struct.pack(">" + "H" * count, *regs)
                if action and action[0] == "drop":
                    conn.close()
                    return
                if action and action[0] == "delay":
                    time.sleep(action[1])
                try:
                    self._send(conn, tid, unit, reply)
                except OSError:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _send(conn, tid, unit, pdu):
        conn.sendall(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)

    def close(self):
        self._stop.set()
        self.drop_all()
        for t in self.threads:
            t.join(3)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
