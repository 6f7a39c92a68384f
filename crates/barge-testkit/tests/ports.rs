//! The kit's loopback ports: a test never gets a port another test of the same process was
//! given, and a down channel's port stays refused until it comes up.

use barge_testkit::notify::{DownPort, HookReceiver, SmtpServer};
use std::net::TcpStream;

#[test]
fn free_port_never_hands_out_a_port_twice() {
    // The kernel picks from ~28,000 ephemeral ports; 3,000 picks would repeat one dozens of
    // times if the kit did not remember what it handed out.
    let ports: Vec<u16> = (0..3000).map(|_| barge_testkit::free_port()).collect();
    let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), ports.len());
}

#[test]
fn a_down_port_refuses_connections_until_a_receiver_starts_on_it() {
    let down = DownPort::reserve();
    let port = down.port;
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    // Nobody else can listen on it meanwhile.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
    let receiver = HookReceiver::start_on(down);
    assert_eq!(receiver.port, port);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
}

#[test]
fn the_smtp_server_answers_on_the_port_it_reports() {
    let smtp = SmtpServer::start();
    let mut banner = String::new();
    let stream = TcpStream::connect(("127.0.0.1", smtp.port)).unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut banner).unwrap();
    assert!(banner.starts_with("220 "), "{banner:?}");
}
