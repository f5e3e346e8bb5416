//! One query in, one response out: the header checks that come before any decoding, the
//! response codes, EDNS0, and fitting the answer to the transport (truncation over UDP).
//! Pure apart from the shuffle's generator, so the fuzz target drives exactly this.

use hickory_proto::op::{
    emit_message_parts, Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use rand_core::RngCore;

use super::answer::Picked;
use super::cache::AnswerCache;
use super::names::{self, Asked};
use super::DnsConfig;
use crate::runtime::driver::Snapshot;

/// Classic DNS over UDP without EDNS0 (RFC 1035 §4.2.1).
pub const UDP_PLAIN_BYTES: u16 = 512;

/// The largest UDP answer we send, whatever a client's EDNS0 offers: 1,232 bytes fits the
/// IPv6 minimum MTU without fragmenting (the DNS Flag Day 2020 value) and caps what a spoofed
/// query can reflect.
pub const UDP_EDNS_MAX_BYTES: u16 = 1_232;

/// A TCP message's length prefix is 16 bits.
pub const TCP_MAX_BYTES: u16 = u16::MAX;

/// Size of an OPT record without options: root name, type, class, TTL, length.
const OPT_BYTES: u16 = 11;

/// How the answer travels: it decides the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The response to `request`, or None when there is nothing to answer: too short to carry an
/// id, or itself a response (answering answers invites loops between two servers).
pub fn respond(
    s: &Snapshot,
    config: &DnsConfig,
    cache: &mut AnswerCache,
    request: &[u8],
    transport: Transport,
    rng: &mut impl RngCore,
) -> Option<Vec<u8>> {
    // The header alone first: its counts are checked before hickory sizes vectors by them.
    let header = Header::read(&mut BinDecoder::new(request)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let refuse = |code: ResponseCode| {
        let mut metadata = Metadata::response_from_request(&header.metadata);
        metadata.response_code = code;
        Response::bare(metadata).encode(transport, UDP_PLAIN_BYTES)
    };
    if header.metadata.op_code != OpCode::Query {
        return refuse(ResponseCode::NotImp);
    }
    let counts = header.counts;
    // One question; an OPT record at most in the additional section (no TSIG here).
    if counts.queries != 1 || counts.answers != 0 || counts.authorities != 0 {
        return refuse(ResponseCode::FormErr);
    }
    if counts.additionals > 1 {
        return refuse(ResponseCode::FormErr);
    }
    let Ok(request) = Message::from_vec(request) else {
        return refuse(ResponseCode::FormErr);
    };
    let question = request.queries.first()?;

    let mut response = Response::bare(Metadata::response_from_request(&request.metadata));
    response.question = Some(question);
    let mut limit = UDP_PLAIN_BYTES;
    if let Some(edns) = &request.edns {
        let mut ours = Edns::new();
        ours.set_max_payload(UDP_EDNS_MAX_BYTES);
        response.edns = Some(ours);
        if edns.version() > 0 {
            response.metadata.response_code = ResponseCode::BADVERS;
            return response.encode(transport, limit);
        }
        limit = edns
            .max_payload()
            .clamp(UDP_PLAIN_BYTES, UDP_EDNS_MAX_BYTES);
    }
    if !matches!(question.query_class(), DNSClass::IN | DNSClass::ANY) {
        response.metadata.response_code = ResponseCode::Refused;
        return response.encode(transport, limit);
    }
    let asked = names::parse(question.name(), &config.domain);
    if asked == Asked::Outside {
        // Not our zone, and no recursion: not an open resolver.
        response.metadata.response_code = ResponseCode::Refused;
        return response.encode(transport, limit);
    }
    response.metadata.authoritative = true;
    // The records are borrowed from the cache: the encoder writes them from there.
    let (picked, soa) = cache.answer(
        s,
        config,
        question.name(),
        question.query_type(),
        &asked,
        rng,
    );
    match picked {
        Picked::Found {
            answers,
            additionals,
        } => {
            if answers.is_empty() {
                // NODATA: the name exists, nothing of this type (RFC 2308 §2.2).
                response.authority = Some(soa);
            }
            response.answers = answers;
            response.additionals = additionals;
        }
        Picked::NoSuchName => {
            response.metadata.response_code = ResponseCode::NXDomain;
            response.authority = Some(soa);
        }
    }
    response.encode(transport, limit)
}

/// A response's parts, the records borrowed from where they are kept: encoded straight from
/// them, never copied into a `Message`.
struct Response<'a> {
    metadata: Metadata,
    question: Option<&'a Query>,
    answers: Vec<&'a Record>,
    authority: Option<&'a Record>,
    additionals: Vec<&'a Record>,
    edns: Option<Edns>,
}

impl<'a> Response<'a> {
    fn bare(metadata: Metadata) -> Response<'a> {
        Response {
            metadata,
            question: None,
            answers: Vec::new(),
            authority: None,
            additionals: Vec::new(),
            edns: None,
        }
    }

    /// Encode within the transport's limit. Over UDP, an answer that does not fit is cut to
    /// the records that do, without its additional section, and marked truncated (TC), so the
    /// client asks again over TCP.
    fn encode(&self, transport: Transport, udp_limit: u16) -> Option<Vec<u8>> {
        let limit = match transport {
            Transport::Udp => udp_limit,
            Transport::Tcp => TCP_MAX_BYTES,
        };
        // Whole, within the limit: hickory's encoder stops at the limit and says so in the
        // header it writes, so an answer that does not fit costs a bounded pass.
        let (whole, header) = self.emit(&self.metadata, limit, usize::MAX, true, true)?;
        if !header.metadata.truncation {
            return Some(whole);
        }
        // How many answers fit, with room kept for the OPT record.
        let reserve = if self.edns.is_some() { OPT_BYTES } else { 0 };
        let (_, fitted) = self.emit(
            &self.metadata,
            limit.saturating_sub(reserve),
            usize::MAX,
            false,
            false,
        )?;
        let mut cut = self.metadata;
        cut.truncation = true;
        let answers = usize::from(fitted.counts.answers);
        let with_authority = answers == self.answers.len();
        self.emit(&cut, limit, answers, with_authority, false)
            .map(|(bytes, _)| bytes)
    }

    /// One pass of the encoder: the question, the first `answers` answers, the authority
    /// record if `authority`, the additional records if `additionals`, then the OPT record.
    fn emit(
        &self,
        metadata: &Metadata,
        limit: u16,
        answers: usize,
        authority: bool,
        additionals: bool,
    ) -> Option<(Vec<u8>, Header)> {
        let mut bytes = Vec::with_capacity(usize::from(limit.min(UDP_EDNS_MAX_BYTES)));
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(limit);
        let authorities = self.authority.filter(|_| authority);
        let extra: &[&Record] = if additionals { &self.additionals } else { &[] };
        let header = emit_message_parts(
            metadata,
            &mut self.question.into_iter(),
            &mut self.answers.iter().take(answers).copied(),
            &mut authorities.into_iter(),
            &mut extra.iter().copied(),
            self.edns.as_ref(),
            None,
            &mut encoder,
        )
        .ok()?;
        Some((bytes, header))
    }
}

/// A question for `name` of type `wanted`, as a client would send it (tests and benches).
pub fn question(id: u16, name: &str, wanted: RecordType, edns_payload: Option<u16>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    if let Ok(name) = hickory_proto::rr::Name::from_ascii(name) {
        message.add_query(Query::query(name, wanted));
    }
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use hickory_proto::rr::RData;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::runtime::dns::fuzzing::fixture;

    fn ask(name: &str, wanted: RecordType, edns: Option<u16>, transport: Transport) -> Message {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let request = question(0x1234, name, wanted, edns);
        let config = DnsConfig::default();
        let bytes = respond(
            fixture(),
            &config,
            &mut AnswerCache::new(64),
            &request,
            transport,
            &mut rng,
        )
        .expect("an answer");
        if transport == Transport::Udp {
            let limit = edns.map_or(512, |e| e.clamp(512, UDP_EDNS_MAX_BYTES));
            assert!(bytes.len() <= usize::from(limit), "{} bytes", bytes.len());
        }
        Message::from_vec(&bytes).expect("a valid answer")
    }

    fn ips(m: &Message) -> Vec<IpAddr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }

    fn has_soa(m: &Message) -> bool {
        matches!(m.authorities.as_slice(), [r] if r.record_type() == RecordType::SOA)
    }

    #[test]
    fn a_service_answers_its_serving_instances_only() {
        let m = ask("db.service.consul.", RecordType::A, None, Transport::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(ips(&m), vec!["10.0.2.1".parse::<IpAddr>().unwrap()]);
        let all = ask("web.service.consul.", RecordType::A, None, Transport::Tcp);
        assert!(!all.metadata.truncation);
        let got = ips(&all);
        assert_eq!(got.len(), RECORDS_MAX_FOR_TEST);
        for away in ["10.0.1.1", "10.0.1.2"] {
            assert!(!got.contains(&away.parse().unwrap()), "{away} served");
        }
        let v6 = ask(
            "web.service.consul.",
            RecordType::AAAA,
            None,
            Transport::Udp,
        );
        assert_eq!(ips(&v6), vec!["2001:db8::7".parse::<IpAddr>().unwrap()]);
    }

    const RECORDS_MAX_FOR_TEST: usize = crate::runtime::dns::RECORDS_MAX;

    #[test]
    fn answers_are_shuffled_and_tags_filter() {
        let first = ask("web.service.consul.", RecordType::A, None, Transport::Tcp);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let config = DnsConfig::default();
        let request = question(1, "web.service.consul.", RecordType::A, None);
        let again = respond(
            fixture(),
            &config,
            &mut AnswerCache::new(0),
            &request,
            Transport::Tcp,
            &mut rng,
        )
        .unwrap();
        assert_ne!(ips(&first), ips(&Message::from_vec(&again).unwrap()));
        let tagged = ask(
            "v1.web.service.consul.",
            RecordType::A,
            None,
            Transport::Tcp,
        );
        assert_eq!(ips(&tagged).len(), 32);
        let rfc = ask(
            "_web._v1.service.dc1.consul.",
            RecordType::A,
            None,
            Transport::Tcp,
        );
        assert_eq!(ips(&rfc).len(), 32);
        let other_dc = ask(
            "web.service.dc2.consul.",
            RecordType::A,
            None,
            Transport::Udp,
        );
        assert_eq!(other_dc.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn udp_truncates_and_edns_widens() {
        let plain = ask("web.service.consul.", RecordType::A, None, Transport::Udp);
        assert!(plain.metadata.truncation);
        assert!(!ips(&plain).is_empty());
        // 64 addresses (16 bytes each, names compressed) fit in EDNS0's 1,232.
        let wide = ask(
            "web.service.consul.",
            RecordType::A,
            Some(4096),
            Transport::Udp,
        );
        assert!(!wide.metadata.truncation);
        assert_eq!(ips(&wide).len(), RECORDS_MAX_FOR_TEST);
        // 64 SRV records with their targets' addresses do not.
        let srv = ask(
            "web.service.consul.",
            RecordType::SRV,
            Some(4096),
            Transport::Udp,
        );
        assert!(srv.metadata.truncation);
        assert!(!srv.answers.is_empty() && srv.additionals.is_empty());
        assert_eq!(wide.edns.as_ref().map(Edns::max_payload), Some(1_232));
        let small = ask(
            "db.service.consul.",
            RecordType::A,
            Some(1232),
            Transport::Udp,
        );
        assert!(!small.metadata.truncation);
        assert!(small.edns.is_some());
    }

    #[test]
    fn srv_names_targets_and_adds_their_addresses() {
        let m = ask(
            "_db._tcp.service.consul.",
            RecordType::SRV,
            None,
            Transport::Udp,
        );
        let [srv] = m.answers.as_slice() else {
            panic!("one SRV: {m:?}")
        };
        let RData::SRV(srv) = &srv.data else {
            panic!("{srv:?}")
        };
        assert_eq!(srv.port, 8080);
        assert_eq!(srv.target.to_ascii(), "0a000201.addr.dc1.consul.");
        let [extra] = m.additionals.as_slice() else {
            panic!("{m:?}")
        };
        assert_eq!(extra.name, srv.target);
        assert_eq!(
            extra.data,
            RData::A(hickory_proto::rr::rdata::A([10, 0, 2, 1].into()))
        );
        let all = ask("web.service.consul.", RecordType::SRV, None, Transport::Tcp);
        let targets: Vec<String> = all
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(s.target.to_ascii()),
                _ => None,
            })
            .collect();
        assert_eq!(targets.len(), RECORDS_MAX_FOR_TEST);
        // The instance without an address is reached at its node, named as the node.
        let node = ask("web.service.consul.", RecordType::SRV, None, Transport::Tcp);
        let named_node = node.answers.iter().any(|r| {
            matches!(&r.data, RData::SRV(s) if s.target.to_ascii() == "fuzz-node.node.dc1.consul.")
        });
        let shuffled_out = node.answers.len() == RECORDS_MAX_FOR_TEST;
        assert!(named_node || shuffled_out, "{node:?}");
    }

    #[test]
    fn nodes_and_reverse_lookups() {
        let m = ask(
            "fuzz-node.node.consul.",
            RecordType::A,
            None,
            Transport::Udp,
        );
        assert_eq!(ips(&m), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        let m = ask(
            "FUZZ-NODE.node.dc1.consul.",
            RecordType::A,
            None,
            Transport::Udp,
        );
        assert_eq!(ips(&m).len(), 1);
        let m = ask(
            "1.0.0.127.in-addr.arpa.",
            RecordType::PTR,
            None,
            Transport::Udp,
        );
        let [ptr] = m.answers.as_slice() else {
            panic!("{m:?}")
        };
        assert_eq!(ptr.data.to_string(), "fuzz-node.node.dc1.consul.");
        let m = ask("nobody.node.consul.", RecordType::A, None, Transport::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn negative_answers_carry_the_soa() {
        let m = ask("nope.service.consul.", RecordType::A, None, Transport::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(has_soa(&m), "{m:?}");
        let m = ask("db.service.consul.", RecordType::AAAA, None, Transport::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty() && has_soa(&m), "NODATA: {m:?}");
        let m = ask("db.service.consul.", RecordType::TXT, None, Transport::Udp);
        assert!(m.answers.is_empty() && has_soa(&m), "NODATA: {m:?}");
        let m = ask("consul.", RecordType::SOA, None, Transport::Udp);
        assert_eq!(m.answers.len(), 1);
    }

    #[test]
    fn refusals_and_malformed_queries() {
        let m = ask("example.com.", RecordType::A, None, Transport::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        assert!(!m.metadata.recursion_available);

        let config = DnsConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut run = |bytes: &[u8]| {
            respond(
                fixture(),
                &config,
                &mut AnswerCache::new(0),
                bytes,
                Transport::Udp,
                &mut rng,
            )
            .map(|a| Message::from_vec(&a).unwrap().metadata.response_code)
        };
        let good = question(9, "db.service.consul.", RecordType::A, None);
        // A response is never answered; a stub too short for an id neither.
        let mut response = good.clone();
        response[2] |= 0x80;
        assert_eq!(run(&response), None);
        assert_eq!(run(&good[..5]), None);
        // Two questions, or a count the bytes do not hold.
        let mut two = good.clone();
        two[5] = 2;
        assert_eq!(run(&two), Some(ResponseCode::FormErr));
        let mut huge = good.clone();
        huge[4..6].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(run(&huge), Some(ResponseCode::FormErr));
        assert_eq!(run(&good[..good.len() - 1]), Some(ResponseCode::FormErr));
        // A CHAOS-class question (`version.bind`) is not ours.
        let mut chaos = good.clone();
        let class_at = chaos.len() - 1;
        chaos[class_at] = 3;
        assert_eq!(run(&chaos), Some(ResponseCode::Refused));
        // An opcode other than QUERY.
        let mut notify = good.clone();
        notify[2] |= 4 << 3;
        assert_eq!(run(&notify), Some(ResponseCode::NotImp));
        // EDNS version 1.
        let mut request = Message::from_vec(&question(
            9,
            "db.service.consul.",
            RecordType::A,
            Some(1232),
        ))
        .unwrap();
        if let Some(edns) = request.edns.as_mut() {
            edns.set_version(1);
        }
        let m = Message::from_vec(
            &respond(
                fixture(),
                &config,
                &mut AnswerCache::new(0),
                &request.to_vec().unwrap(),
                Transport::Udp,
                &mut rng,
            )
            .unwrap(),
        )
        .unwrap();
        // 16 is BADVERS with an OPT record (hickory reads it back as TSIG's BADSIG).
        assert_eq!(u16::from(m.metadata.response_code), 16);
        assert!(m.edns.is_some());
    }
}
