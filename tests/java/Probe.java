// Signature, Cipher and Mac through OpenJDK's SunPKCS11 provider on the
// token, as a Java application uses them (tests/tests/clients.rs runs it
// with `java Probe.java CONFIG PIN`): the keys keytool made sign, a
// software verifier accepts the signatures, AES-GCM seals and opens, a
// forged tag surfaces as AEADBadTagException, HMAC-SHA256 computes.
import java.security.*;
import java.security.spec.*;
import javax.crypto.*;
import javax.crypto.spec.*;

public class Probe {
    public static void main(String[] args) throws Exception {
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, args[1].toCharArray());
        byte[] data = "signed from Java".getBytes();
        for (String[] k : new String[][] {{"jrsa", "SHA256withRSA"}, {"jec", "SHA256withECDSA"}, {"jrsa", "RSASSA-PSS"}}) {
            PrivateKey priv = (PrivateKey) ks.getKey(k[0], null);
            Signature s = Signature.getInstance(k[1], p);
            if (k[1].equals("RSASSA-PSS")) s.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1));
            s.initSign(priv); s.update(data); byte[] sig = s.sign();
            Signature v = Signature.getInstance(k[1]);
            if (k[1].equals("RSASSA-PSS")) v.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1));
            v.initVerify(ks.getCertificate(k[0]).getPublicKey()); v.update(data);
            if (!v.verify(sig)) throw new AssertionError(k[1]);
            System.out.println(k[1] + " ok");
        }
        KeyGenerator kg = KeyGenerator.getInstance("AES", p); kg.init(256);
        SecretKey aes = kg.generateKey();
        byte[] iv = new byte[12];
        Cipher c = Cipher.getInstance("AES/GCM/NoPadding", p);
        c.init(Cipher.ENCRYPT_MODE, aes, new GCMParameterSpec(128, iv));
        c.updateAAD("header".getBytes());
        byte[] sealed = c.doFinal(data);
        Cipher d = Cipher.getInstance("AES/GCM/NoPadding", p);
        d.init(Cipher.DECRYPT_MODE, aes, new GCMParameterSpec(128, iv));
        d.updateAAD("header".getBytes());
        if (!java.util.Arrays.equals(d.doFinal(sealed), data)) throw new AssertionError("GCM");
        System.out.println("AES/GCM ok");
        sealed[sealed.length - 1] ^= 1;
        d.init(Cipher.DECRYPT_MODE, aes, new GCMParameterSpec(128, iv));
        d.updateAAD("header".getBytes());
        try { d.doFinal(sealed); throw new AssertionError("forged tag accepted"); }
        catch (AEADBadTagException e) { System.out.println("forged tag: AEADBadTagException"); }
        KeyGenerator hk = KeyGenerator.getInstance("HmacSHA256", p);
        SecretKey hmacKey = hk.generateKey();
        Mac m = Mac.getInstance("HmacSHA256", p); m.init(hmacKey);
        byte[] t1 = m.doFinal(data); byte[] t2 = m.doFinal(data);
        if (t1.length != 32 || !java.util.Arrays.equals(t1, t2)) throw new AssertionError("HMAC");
        System.out.println("HmacSHA256 ok");
    }
}
