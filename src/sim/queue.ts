// Binary min-heap of timed events; ties break by insertion order so runs are deterministic.
export interface Timed<T> {
  atMs: number;
  seq: number;
  item: T;
}

export class EventQueue<T> {
  private readonly heap: Timed<T>[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(atMs: number, item: T): void {
    this.heap.push({ atMs, seq: this.seq++, item });
    let index = this.heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.less(index, parent)) break;
      this.swap(index, parent);
      index = parent;
    }
  }

  peekMs(): number {
    return this.heap[0]?.atMs ?? Number.POSITIVE_INFINITY;
  }

  pop(): Timed<T> | undefined {
    const top = this.heap[0];
    const last = this.heap.pop();
    if (top === undefined || last === undefined) return undefined;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let smallest = index;
        if (left < this.heap.length && this.less(left, smallest)) smallest = left;
        if (right < this.heap.length && this.less(right, smallest)) smallest = right;
        if (smallest === index) break;
        this.swap(index, smallest);
        index = smallest;
      }
    }
    return top;
  }

  private less(a: number, b: number): boolean {
    const left = this.heap[a] as Timed<T>;
    const right = this.heap[b] as Timed<T>;
    return left.atMs < right.atMs || (left.atMs === right.atMs && left.seq < right.seq);
  }

  private swap(a: number, b: number): void {
    const held = this.heap[a] as Timed<T>;
    this.heap[a] = this.heap[b] as Timed<T>;
    this.heap[b] = held;
  }
}
