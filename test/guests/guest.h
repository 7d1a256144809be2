/* Shared declarations for the matchlock test guest (freestanding, x86_64). */
#ifndef GUEST_H
#define GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long usize;

#define BOOT_LINUX 0
#define BOOT_PVH 1

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)
#define PAGE 4096ULL

/* ---- port I/O (ring 3 may use these: RFLAGS.IOPL = 3) ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* Unaligned little-endian reads from guest-physical memory (identity mapped). */
typedef u16 __attribute__((aligned(1), may_alias)) u16_un;
typedef u32 __attribute__((aligned(1), may_alias)) u32_un;
typedef u64 __attribute__((aligned(1), may_alias)) u64_un;
static inline u8 rd8(u64 a) { return *(volatile const u8 *)a; }
static inline u16 rd16(u64 a) { return *(volatile const u16_un *)a; }
static inline u32 rd32(u64 a) { return *(volatile const u32_un *)a; }
static inline u64 rd64(u64 a) { return *(volatile const u64_un *)a; }

/* ---- linker symbols ---- */
extern char _image_start[], _image_end[];

/* ---- setup.c (ring 0) ---- */
extern u64 mapped_top; /* memory-map entries ending at or below this are identity mapped, U/S=1 */
u64 ring0_setup(u32 kind, u64 info);

/* ---- lib.c ---- */
void *memset(void *d, int c, usize n);
void *memcpy(void *d, const void *s, usize n);
usize strlen(const char *s);
int starts_with(const char *s, usize len, const char *prefix);
int str_eq(const char *s, usize len, const char *lit);
int parse_u64(const char *s, usize len, u64 *out);
int parse_u64_list(const char *t, usize n, u64 *v, int count);

/* ---- serial.c ---- */
void serial_init(void);
void serial_flush(void);
void put_str(const char *s);
void put_mem(const char *s, usize n);
void put_hex(u64 v);
void put_dec(u64 v);
void put_line_start(void); /* prints "mltest: " */
void put_nl(void);
void say(const char *s); /* "mltest: <s>\n" */

/* ---- e820.c ---- */
struct mem_region {
	u64 addr, size;
	u32 type;
};
#define MAX_REGIONS 128
extern struct mem_region regions[MAX_REGIONS];
extern u32 nr_regions;
void e820_load(u32 kind, u64 info);
void e820_print(void);

/* ---- cmdline.c ---- */
#define CMDLINE_MAX 8192
extern char cmdline[CMDLINE_MAX];
extern usize cmdline_len;
void cmdline_load(u32 kind, u64 info);
int cmdline_next(usize *pos, const char **tok, usize *len);

/* ---- memtest.c / mptable.c / exit.c ---- */
void memtest_run(void);
void touch_run(void); /* memtest.c: ml.touch */
void mptable_run(void);
void pio_run(u64 n);
void kbd_run(u64 n);   /* host.c: ml.kbd=<N> */
void ticks_run(u64 n); /* host.c: ml.ticks=<N> */
void vblk_command(const char *t, usize n); /* vblk.c: t is what follows "ml.vblk." */
void vnet_command(const char *t, usize n); /* vnet.c: t is what follows "ml.vnet." */
void vsock_command(const char *t, usize n); /* vsock.c: t is what follows "ml.vsock." */
struct conn;                               /* vsock.c's connections, for agent.c */
struct conn *vsock_serve(u32 port, struct conn *c); /* accepts on port (c == 0) or waits for data; 0 when closed */
u32 vsock_available(struct conn *c);
u8 vsock_byte(struct conn *c, u32 i);
void vsock_consume(struct conn *c, u32 n);
int vsock_write(struct conn *c, const u8 *data, u32 len);
void vsock_close(struct conn *c);
void agent_run(u32 port); /* agent.c: ml.vsock.agent=<port> */

/* ---- vmmio.c: virtio-mmio devices announced as virtio_mmio.device=SIZE@BASE:IRQ ---- */
u64 vmmio_find(u32 device_id, u64 index); /* base of the index-th modern device of that ID, or 0 */
long vmmio_begin(u64 base);               /* resets, ACKNOWLEDGE|DRIVER; the low 32 feature bits, -1 without VERSION_1 */
int vmmio_accept(u64 base, u32 low);      /* accepts VERSION_1 and `low`; 0 when FEATURES_OK does not stick */
static inline u32 vm_rd(u64 base, u32 off) { return *(volatile u32 *)(base + off); }
static inline void vm_wr(u64 base, u32 off, u32 v) { *(volatile u32 *)(base + off) = v; }
static inline void vm_mb(void) { __asm__ volatile("mfence" ::: "memory"); }

/* A split queue of VQ_SIZE entries as a driver keeps it (vnet.c, vsock.c). */
#define VQ_SIZE 64
struct vdesc {
	u64 addr;
	u32 len;
	u16 flags, next;
};
struct vq {
	struct vdesc desc[VQ_SIZE] __attribute__((aligned(16)));
	struct {
		u16 flags, idx, ring[VQ_SIZE], used_event;
	} avail __attribute__((aligned(4)));
	struct {
		u16 flags, idx;
		struct {
			u32 id, len;
		} ring[VQ_SIZE];
		u16 avail_event;
	} used __attribute__((aligned(4)));
	u16 last_used;
	u32 in_flight;
};
void vq_setup(u64 base, u32 index, struct vq *q);      /* tells the device where queue `index` is; ready */
void vq_post(u64 base, struct vq *q, u16 id, u32 notify); /* makes descriptor `id` available, notifies */
u32 vq_reap(struct vq *q);                              /* takes used entries; returns how many are in flight */
__attribute__((noreturn)) void exit_reset(void);
__attribute__((noreturn)) void exit_triple(void);
__attribute__((noreturn)) void exit_hang(void);
__attribute__((noreturn)) void exit_debug(u32 code);

#endif
