import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { DeadlineHeap, DeadlineQueue } from "../lib/net/deadlines.ts";
import { monotonicMs } from "../lib/net/clock.ts";

Deno.test("DeadlineQueue: 500 deadlines in random order come due in time order, on one timer", async () => {
  const due: number[] = [];
  const done = Promise.withResolvers<void>();
  const queue = new DeadlineQueue<number>((key) => {
    due.push(key);
    if (due.length === 500) done.resolve();
  });
  const start = monotonicMs();
  // Keys are the deadlines' offsets, so time order is key order (ties broken either way).
  const offsets = Array.from({ length: 500 }, (_, i) => (i * 7919) % 40);
  for (const [i, offset] of offsets.entries()) queue.add(start + offset, offset * 1000 + i);
  strictEqual(queue.size, 500);
  await done.promise;
  for (let i = 1; i < due.length; i++) {
    assert(Math.floor(due[i - 1] / 1000) <= Math.floor(due[i] / 1000), `${due[i - 1]} ${due[i]}`);
  }
  assertEquals(
    [...due].sort((a, b) => a - b),
    offsets.map((o, i) => o * 1000 + i).sort((a, b) => a - b),
  );
  strictEqual(queue.size, 0);
});

Deno.test("DeadlineQueue: a deadline added while others come due, and an earlier one added late", async () => {
  const due: string[] = [];
  const done = Promise.withResolvers<void>();
  const start = monotonicMs();
  const queue = new DeadlineQueue<number>((key) => {
    due.push(`k${key}`);
    if (key === 1) queue.add(monotonicMs() + 5, 3); // a retransmission's new timeout
    if (due.length === 3) done.resolve();
  });
  queue.add(start + 200, 2);
  queue.add(start + 5, 1); // earlier than the armed timer: re-armed
  await done.promise;
  assertEquals(due, ["k1", "k3", "k2"]);
  assert(monotonicMs() - start >= 200);
});

Deno.test("DeadlineQueue: clear() drops every deadline and the timer", () => {
  const queue = new DeadlineQueue<number>(() => {
    throw new Error("nothing may come due after clear()");
  });
  queue.add(monotonicMs() + 1, 1);
  queue.add(monotonicMs() + 2, 2);
  queue.clear();
  strictEqual(queue.size, 0);
  // Deno's op sanitizer fails this test if a timer is still pending when it ends.
});

Deno.test("DeadlineQueue: deadlines no longer live are dropped once too many wait", () => {
  const live = new Set<number>();
  const queue = new DeadlineQueue<number>(() => {}, (key) => live.has(key), 100);
  const far = monotonicMs() + 3_600_000; // an hour: none comes due during the test
  for (let key = 0; key < 1_000; key++) {
    queue.add(far + key, key);
    if (key % 10 === 0) live.add(key); // one in ten still awaited, as replies arrive
  }
  // Bounded by the live ones (100) plus what came in since the last compaction.
  assert(queue.size <= 200, `${queue.size}`);
  queue.clear();
});

Deno.test("DeadlineQueue: deadlines at the same time come due in the order they were added", async () => {
  const due: number[] = [];
  const done = Promise.withResolvers<void>();
  const queue = new DeadlineQueue<number>((item) => {
    due.push(item);
    if (due.length === 200) done.resolve();
  });
  const at = monotonicMs() + 5;
  // Interleaved with earlier and later ones, so the heap has to reorder around the ties.
  for (let i = 0; i < 100; i++) {
    queue.add(at, i);
    queue.add(at + (i % 2 === 0 ? -1 : 1), 1000 + i);
  }
  await done.promise;
  const ties = due.filter((item) => item < 1000);
  assertEquals(ties, Array.from({ length: 100 }, (_, i) => i));
});

Deno.test("DeadlineQueue: takeAll() hands back what waits, in time order, and stops the timer", () => {
  const queue = new DeadlineQueue<string>(() => {
    throw new Error("nothing may come due after takeAll()");
  });
  const now = monotonicMs();
  queue.add(now + 300, "late");
  queue.add(now + 100, "first");
  queue.add(now + 100, "second");
  queue.add(now + 200, "middle");
  assertEquals(queue.takeAll(), ["first", "second", "middle", "late"]);
  strictEqual(queue.size, 0);
});

Deno.test("DeadlineHeap: takeDue() returns what is due in deadline order, ties in the order added", () => {
  const heap = new DeadlineHeap<string>();
  // Added out of order, several due at once (a loaded machine's late wake-up).
  heap.add(3, "third");
  heap.add(1, "first");
  heap.add(2, "second-a");
  heap.add(2, "second-b");
  heap.add(9, "later");
  strictEqual(heap.nextAt, 1);
  strictEqual(heap.peek(), "first");
  assertEquals(heap.takeDue(5), ["first", "second-a", "second-b", "third"]);
  strictEqual(heap.size, 1);
  assertEquals(heap.takeDue(8), []);
  assertEquals(heap.takeAll(), ["later"]);
  strictEqual(heap.nextAt, Infinity);
});

Deno.test("DeadlineHeap: entries no longer live are dropped once too many wait, order kept", () => {
  const cancelled = new Set<number>();
  const heap = new DeadlineHeap<number>((item) => !cancelled.has(item), 10);
  for (let i = 0; i < 10; i++) heap.add(100 - i, i);
  for (let i = 0; i < 8; i++) cancelled.add(i);
  heap.add(50, 10); // the 11th: compacts
  strictEqual(heap.size, 3);
  assertEquals(heap.takeAll(), [10, 9, 8]);
});
