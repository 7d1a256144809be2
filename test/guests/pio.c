/* ml.pio=<N>: benchmark of the port-I/O exit cost. */
#include "guest.h"

void pio_run(u64 n)
{
	/* tight loop: one 1-byte OUT to port 0x80 per iteration */
	__asm__ volatile("test %0, %0\n\t"
			 "jz 2f\n"
			 "1:\toutb %%al, $0x80\n\t"
			 "dec %0\n\t"
			 "jnz 1b\n"
			 "2:"
			 : "+r"(n)
			 : "a"(0)
			 : "memory", "cc");
}
