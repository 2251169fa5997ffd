/* memscope tracer: a traced process that gets SIGTERM ships its events before it dies.
 *
 * SIGTERM's default action ends a process at once: multiprocessing's Pool.terminate(), a
 * service manager or `kill` would lose every event since the last flush, and a process
 * younger than one flush interval would not be in the log at all. While the disposition is
 * the default, the tracer installs this handler instead. It only writes one byte to the
 * publisher's pipe (async-signal-safe); the publisher thread then ships the final batch
 * and calls tr_term_raise(), which restores the default action and sends SIGTERM again,
 * so the process still dies of SIGTERM (its parent sees the same status).
 *
 * `memscope run`'s bootstrap arms it with no pipe yet (fd -1) as the interpreter starts, so
 * a SIGTERM during the start-up (a spawned Pool worker terminated early) waits until the
 * session exists (tr_term_install then wakes its publisher at once), or, when tracing does
 * not start, is acted on then (tr_term_release).
 *
 * Python never learns of the handler (signal.getsignal() still says SIG_DFL); a program
 * that sets its own SIGTERM handler replaces it, and the program's choice holds. A handler
 * inherited by a forked child before its publisher re-arms it, or running when nothing is
 * armed, acts as the default would. All state is written with the GIL held (install,
 * uninstall, raise) and read by the handler.
 */
#include "tr_core.h"

#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t tr_term_fd = -1; /* the publisher's pipe, write end */
static volatile sig_atomic_t tr_term_owner;   /* pid that armed it */
static volatile sig_atomic_t tr_term_got;     /* SIGTERM arrived (reset by tr_term_raise) */
static int tr_term_installed;

static void tr_term_default(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTERM, &dfl, NULL);
}

static void tr_term_handler(int signo)
{
    int saved = errno;
    if (tr_term_owner != (sig_atomic_t)getpid()) {
        tr_term_default(); /* nothing armed here: what SIGTERM would have done */
        raise(signo);
        errno = saved;
        return;
    }
    tr_term_got = 1;
    int fd = tr_term_fd;
    if (fd >= 0) {
        (void)!write(fd, "T", 1);
    }
    errno = saved;
}

/* 1: installed (the disposition was the default), 0: the program has its own. */
int tr_term_install(int fd)
{
    struct sigaction now;
    if (sigaction(SIGTERM, NULL, &now) != 0) {
        return 0;
    }
    int ours = (now.sa_flags & SA_SIGINFO) == 0 && now.sa_handler == tr_term_handler;
    if (!ours && ((now.sa_flags & SA_SIGINFO) != 0 || now.sa_handler != SIG_DFL)) {
        return 0;
    }
    int inherited = tr_term_owner != (sig_atomic_t)getpid(); /* a forked child's first */
    tr_term_fd = fd;
    tr_term_owner = (sig_atomic_t)getpid();
    if (inherited) {
        tr_term_got = 0;
    }
    if (!ours) {
        struct sigaction act;
        memset(&act, 0, sizeof act);
        act.sa_handler = tr_term_handler;
        sigemptyset(&act.sa_mask);
        act.sa_flags = SA_RESTART;
        if (sigaction(SIGTERM, &act, NULL) != 0) {
            tr_term_fd = -1;
            return 0;
        }
    }
    tr_term_installed = 1;
    if (tr_term_got && fd >= 0) { /* it came while the session was starting */
        (void)!write(fd, "T", 1);
    }
    return 1;
}

/* The bootstrap's end: if no session took the handler over (tracing did not start), back to
 * the default action, and a SIGTERM that came meanwhile acts now. */
void tr_term_release(void)
{
    if (!tr_term_installed || tr_term_fd >= 0) {
        return;
    }
    int got = tr_term_got;
    tr_term_uninstall();
    if (got) {
        kill(getpid(), SIGTERM);
    }
}

int tr_term_pending(void)
{
    return tr_term_got != 0;
}

/* Back to the default action, if the handler is still ours. */
void tr_term_uninstall(void)
{
    struct sigaction now;
    tr_term_fd = -1;
    tr_term_owner = 0;
    if (tr_term_installed && sigaction(SIGTERM, NULL, &now) == 0 &&
        (now.sa_flags & SA_SIGINFO) == 0 && now.sa_handler == tr_term_handler) {
        tr_term_default();
    }
    tr_term_installed = 0;
}

/* The default action, and SIGTERM again: the process ends as the signal meant. The calling
 * thread (the publisher, which blocks SIGTERM) unblocks it so that it dies even when every
 * other thread blocks it. */
void tr_term_raise(void)
{
    tr_term_uninstall();
    kill(getpid(), SIGTERM);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}
