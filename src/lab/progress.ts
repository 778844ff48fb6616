// STAND-IN (branch labrun): the progress bars are written on branch labreport; this file only lets the
// runner compile until that branch is merged, and is replaced by its version.
export class Progress {
  constructor(private readonly out: NodeJS.WriteStream) {}

  phase(name: string, total: number): { tick(n?: number): void; done(summary?: string): void } {
    let n = 0;
    return {
      tick: (k = 1) => {
        n += k;
        this.out.write(`${name}: ${n}/${total}\n`);
      },
      done: (summary?: string) => this.out.write(`${name}: done${summary !== undefined ? ` (${summary})` : ''}\n`),
    };
  }
}
